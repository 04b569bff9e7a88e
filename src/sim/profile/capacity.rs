//! Fabric capacities: the ARM resources (`Microsoft.Fabric/capacities`) that `capacity` steps
//! resume, suspend and scale, and the Power BI capacities workspaces are assigned to.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::values::DurationSpec;

/// A capacity's state when the simulator starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapacityStartState {
    #[default]
    Active,
    Paused,
}

/// Which ARM operations end `Failed` (the capacity keeps its state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapacityOperation {
    Resume,
    Suspend,
    Scale,
}

/// One Fabric capacity, keyed by its ARM name (`[a-z][a-z0-9]*`, 3 to 63 characters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CapacitySpec {
    /// Azure subscription id.
    pub subscription: String,
    /// Azure resource group.
    pub resource_group: String,
    /// SKU name, `F2` .. `F2048` (Power BI lists it as the capacity's `sku`).
    pub sku: String,
    /// `active` or `paused`.
    pub state: CapacityStartState,
    /// The Power BI / Fabric capacity GUID (workspaces' `capacityId`); derived from the name
    /// when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub id: Option<uuid::Uuid>,
    /// Azure region.
    pub region: String,
    /// How long a resume, suspend or scale takes (divided by `time_scale`).
    pub transition: DurationSpec,
    /// `Retry-After` (seconds) on the 202 of an operation and on its status while it runs;
    /// `0` sends none.
    pub retry_after: u64,
    /// Operations that end `Failed` with an ARM error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail: Vec<CapacityOperation>,
    /// The caller has no Azure role on the capacity: every call is 403 `AuthorizationFailed`.
    pub forbidden: bool,
    /// Send `Azure-AsyncOperation` with `Location` on a 202 (the spec's examples do); `false`
    /// sends `Location` only, which the spec's `final-state-via: location` allows.
    pub async_operation: bool,
}

impl Default for CapacitySpec {
    fn default() -> Self {
        CapacitySpec {
            subscription: "00000000-0000-0000-0000-000000000000".into(),
            resource_group: "pbibatch".into(),
            sku: "F64".into(),
            state: CapacityStartState::Active,
            id: None,
            region: "westeurope".into(),
            transition: DurationSpec::Fixed(std::time::Duration::from_millis(300)),
            retry_after: 0,
            fail: Vec::new(),
            forbidden: false,
            async_operation: true,
        }
    }
}

impl CapacitySpec {
    pub(crate) fn check(&self, at: &str, problems: &mut Vec<String>) {
        let name = at.rsplit('.').next().unwrap_or(at);
        if !((3..=63).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        {
            problems.push(format!(
                "{at}: a capacity name is 3 to 63 lower-case letters and digits, starting with a letter"
            ));
        }
        if crate::powerbi::skus::refresh_limit(&self.sku).is_none() {
            problems.push(format!("{at}.sku: unknown SKU `{}`", self.sku));
        }
        if self.transition.max() > std::time::Duration::from_secs(24 * 3600) {
            problems.push(format!("{at}.transition: at most 24h"));
        }
    }
}
