//! The estate `--simulate` shows when no `--sim-profile` is given: two workspaces with a
//! dataflow chain, a cross-workspace link, reports (one paginated), a Dataflow Gen2 and a
//! pipeline, so every part of `discover --lineage` has something to show.

use crate::sim::Profile;

/// The demo estate as a simulator profile (YAML, docs/simulator.md).
pub(super) const DEMO_PROFILE: &str = r#"
defaults:
  duration: 300ms
workspaces:
  Sales Analytics:
    dataflows:
      Raw Orders: {}
      Clean Orders: { upstream_dataflows: [Raw Orders] }
      Customers Staging: {}
    datasets:
      Orders Model: { upstream_dataflows: [Clean Orders, Customers Staging] }
      Customers: { upstream_dataflows: [Customers Staging] }
    reports:
      Orders Book: { dataset: Orders Model }
      Customer List: { dataset: Customers }
      Invoice: { paginated: true }
    fabric_dataflows:
      Sales Gen2: {}
    items:
      Nightly Load: { type: DataPipeline }
      Transform Sales: { type: Notebook }
  Finance:
    datasets:
      Budget: { upstream_dataflows: [Clean Orders] }
    reports:
      Budget Review: { dataset: Budget }
"#;

/// The demo estate's profile.
pub fn demo_profile() -> Profile {
    // The constant is checked by a unit test; a default profile is a safe fallback.
    Profile::from_yaml(DEMO_PROFILE).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_profile_is_valid() {
        let p = Profile::from_yaml(DEMO_PROFILE).unwrap();
        assert_eq!(p.workspaces.len(), 2);
    }
}
