//! ISO-8601 durations (`PT2H30M`), the form Kestra's `timeout` and `retry` properties take
//! (they are parsed by `java.time.Duration.parse`).

use std::time::Duration;

/// Formats a duration as `PT[nH][nM][n[.fff]S]`, to the millisecond (rounded up, so a
/// positive duration never becomes `PT0S`). Hours are not folded into days: `Duration.parse`
/// reads `PT168H` as well as `P7D`, and hours read more plainly next to the job's `timeout`.
pub(crate) fn format(d: Duration) -> String {
    let mut millis = d.as_millis();
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        millis += 1;
    }
    if millis == 0 {
        return "PT0S".to_string();
    }
    let hours = millis / 3_600_000;
    let minutes = (millis / 60_000) % 60;
    let seconds = (millis / 1000) % 60;
    let ms = millis % 1000;
    let mut out = String::from("PT");
    if hours > 0 {
        out.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}M"));
    }
    if ms > 0 {
        let frac = format!("{ms:03}");
        out.push_str(&format!("{seconds}.{}S", frac.trim_end_matches('0')));
    } else if seconds > 0 {
        out.push_str(&format!("{seconds}S"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_java_duration() {
        let cases = [
            (Duration::ZERO, "PT0S"),
            (Duration::from_secs(30), "PT30S"),
            (Duration::from_secs(600), "PT10M"),
            (Duration::from_secs(7200), "PT2H"),
            (Duration::from_secs(5400), "PT1H30M"),
            (Duration::from_secs(3661), "PT1H1M1S"),
            (Duration::from_millis(250), "PT0.25S"),
            (Duration::from_millis(1005), "PT1.005S"),
            (Duration::from_secs(7 * 24 * 3600), "PT168H"),
            (Duration::from_nanos(1), "PT0.001S"),
        ];
        for (d, want) in cases {
            assert_eq!(format(d), want, "{d:?}");
        }
    }
}
