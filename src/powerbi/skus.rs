//! What each capacity SKU allows, as Microsoft documents it.
//!
//! Source: Microsoft Learn, "What is Power BI Premium?" / Fabric "Microsoft Fabric concepts
//! and licenses", the capacity SKU table's "Max concurrent refreshes" (model refresh
//! parallelism) column (<https://learn.microsoft.com/fabric/enterprise/powerbi/service-premium-what-is#semantic-model-sku-limitation>),
//! (the table is repeated in docs/capacity.md). Shared (Pro) capacity allows 8
//! refreshes of a model per day, scheduled and API refreshes together
//! (<https://learn.microsoft.com/power-bi/connect-data/refresh-data>).

/// Semantic-model refreshes a capacity of `sku` runs at once (F, P, A and EM SKUs;
/// case-insensitive), `None` for an unknown SKU.
pub(crate) fn refresh_limit(sku: &str) -> Option<u32> {
    let limit = match sku.trim().to_ascii_uppercase().as_str() {
        "F2" => 1,
        "F4" => 2,
        "F8" | "A1" | "EM1" => 5,
        "F16" | "A2" | "EM2" => 10,
        "F32" | "A3" | "EM3" => 20,
        "F64" | "P1" | "A4" => 40,
        "F128" | "P2" | "A5" => 80,
        "F256" | "P3" | "A6" => 160,
        "F512" | "P4" | "A7" => 320,
        "F1024" | "P5" | "A8" => 640,
        "F2048" => 1280,
        _ => return None,
    };
    Some(limit)
}

/// Refreshes per model and day on shared (Pro) capacity, scheduled and API together.
pub(crate) const SHARED_DAILY_REFRESHES: u32 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_table() {
        assert_eq!(refresh_limit("F2"), Some(1));
        assert_eq!(refresh_limit("f64"), Some(40));
        assert_eq!(refresh_limit("P1"), Some(40));
        assert_eq!(refresh_limit("EM3"), Some(20));
        assert_eq!(refresh_limit("F2048"), Some(1280));
        assert_eq!(refresh_limit("PP3"), None);
    }
}
