//! "Did you mean ...?": the one way pbibatch finds the names closest to a misspelled one,
//! for keys and values in a job file, step ids, selectors, environment variables, and the
//! names of remote workspaces and items.
//!
//! One measure: the same word whatever its case and separators (`SkipApplyChanges` for
//! `skip_apply_changes`) first, then the optimal string alignment distance (a transposition
//! counts one edit) within a third of the word's length (at least 1, at most 3).

/// How close `candidate` is to `found`: 0 for the same word spelled differently, else the edit
/// distance plus one; `None` when it is too far to be a likely typo.
fn distance(found: &str, candidate: &str, ignore_case: bool) -> Option<usize> {
    if candidate == found {
        return None;
    }
    let folded = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    if folded(candidate) == folded(found) {
        return Some(0);
    }
    let len = found.chars().count();
    let limit = (len / 3).clamp(1, 3);
    if candidate.chars().count().abs_diff(len) > limit * 4 {
        return None;
    }
    let d = if ignore_case {
        strsim::osa_distance(&found.to_lowercase(), &candidate.to_lowercase())
    } else {
        strsim::osa_distance(found, candidate)
    };
    (d <= limit).then_some(d + 1)
}

/// The closest candidate to a misspelled word (case matters: keys and values in a job file),
/// if one is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    found: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .filter_map(|c| distance(found, c, false).map(|d| (d, c)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean `best`?`, the hint every diagnostic shows.
pub(crate) fn hint(best: &str) -> String {
    format!("did you mean `{best}`?")
}

/// [`did_you_mean`] as a hint.
pub(crate) fn hint_for<'a>(
    found: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<String> {
    did_you_mean(found, candidates).map(hint)
}

/// Up to five names close to `wanted`, best first, for names people type from memory (remote
/// workspaces and items): case is ignored, and a name that contains the wanted text (or is
/// contained in it) counts as close.
pub(crate) fn near_names<'a>(
    wanted: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let w = wanted.to_lowercase();
    let mut scored: Vec<(usize, &str)> = names
        .into_iter()
        .filter_map(|n| {
            let l = n.to_lowercase();
            let contains = !w.is_empty() && (l.contains(&w) || w.contains(&l));
            distance(wanted, n, true)
                .or_else(|| contains.then_some(usize::MAX))
                .map(|d| (d, n))
        })
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    let mut out: Vec<String> = Vec::new();
    for (_, n) in scored {
        if !out.iter().any(|o| o == n) {
            out.push(n.to_string());
        }
        if out.len() == 5 {
            break;
        }
    }
    out
}

/// `; did you mean `a`, `b`?` for the names near `wanted` (see [`near_names`]), empty when none
/// is near: the tail of a "not found" message.
pub(crate) fn near_hint<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    let near = near_names(wanted, names);
    if near.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = near.iter().map(|n| format!("`{n}`")).collect();
    format!("; did you mean {}?", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_its_word() {
        let keys = ["dataset", "dataflow", "depends_on"];
        assert_eq!(did_you_mean("datset", keys.into_iter()), Some("dataset"));
        assert_eq!(did_you_mean("xyz", keys.into_iter()), None);
        assert_eq!(did_you_mean("dataset", keys.into_iter()), None);
    }

    #[test]
    fn the_same_word_in_another_spelling_wins() {
        let values = ["skip_apply_changes", "skip_apply"];
        assert_eq!(
            did_you_mean("SkipApplyChanges", values.into_iter()),
            Some("skip_apply_changes")
        );
    }

    #[test]
    fn remote_names_are_ranked_ignoring_case() {
        let names = ["ORDER_LIST", "ORDER_BOOK", "Sales", "order list v2"];
        let near = near_names("ORDER_LST", names);
        assert_eq!(near.first().map(String::as_str), Some("ORDER_LIST"));
        assert!(!near.iter().any(|n| n == "Sales"));
        assert_eq!(
            near_names("finance", ["Finance Prod", "HR"]),
            vec!["Finance Prod"]
        );
        assert_eq!(
            near_hint("ORDER_LST", ["ORDER_LIST", "HR"]),
            "; did you mean `ORDER_LIST`?"
        );
        assert_eq!(near_hint("xyz", ["ORDER_LIST"]), "");
    }
}
