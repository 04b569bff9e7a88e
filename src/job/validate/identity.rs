//! What the service refuses because of who calls, known before anything is sent: a mail
//! notify option from an app-only identity (an error: the service answers 400), and a
//! Dataflow Gen2 run by one (a warning: the run is accepted and then fails), a `fabric_job`
//! whose item's run operation lists no service principal (an error). The simulator
//! enforces the same rules (docs/simulator.md, "Strict rules").

use indexmap::IndexMap;

use super::Checker;
use crate::job::Code;
use crate::job::diag::Severity;
use crate::job::model::{Connection, Credentials, Generation, NotifyOption, Step, StepKind};
use crate::job::raw::RawJob;

/// Whether a connection signs in as an application (service principal, managed identity)
/// rather than a user; `None` when it cannot be known (a token given as is).
fn app_only(credentials: &Credentials) -> Option<bool> {
    match credentials {
        Credentials::ClientSecret { .. }
        | Credentials::ClientCertificate { .. }
        | Credentials::WorkloadIdentity { .. }
        | Credentials::ManagedIdentity { .. } => Some(true),
        Credentials::AzureCli { .. } => Some(false),
        Credentials::AccessToken { .. } => None,
    }
}

/// Checks every step against the identity of its connection.
pub(super) fn check(
    c: &mut Checker<'_>,
    raw: &RawJob,
    steps: &IndexMap<String, Step>,
    connections: &IndexMap<String, Connection>,
) {
    for (id, step) in steps {
        let Some(conn) = connections.get(&step.connection) else {
            continue;
        };
        if app_only(&conn.credentials) != Some(true) {
            continue;
        }
        let Some(raw_step) = raw.steps.get().iter().find(|(k, _)| k.get() == id) else {
            continue;
        };
        let raw_step = raw_step.1.get();
        let who = format!("connection `{}` signs in as an application", conn.name);
        match &step.kind {
            StepKind::Dataset(d) if d.refresh.is_none() => {
                mail_notify(c, raw_step, d.notify, &who);
            }
            StepKind::Dataflow(d) if d.generation == Generation::Gen1 => {
                mail_notify(c, raw_step, d.notify, &who);
            }
            StepKind::Dataflow(_) => {
                let loc = raw_step
                    .generation
                    .as_ref()
                    .map(|g| g.loc())
                    .or_else(|| raw_step.dataflow.as_ref().map(|d| d.loc()));
                let message = format!(
                    "step `{id}`: Fabric runs a Dataflow Gen2 for a signed-in user only: {who}, so the run will be accepted and then fail with SPNBasedRefreshNotAllowed"
                );
                let help = "use a connection with a user's token (`access_token`, or the Azure CLI login) for this step's `connection:`";
                match loc {
                    Some(loc) => {
                        let (off, len) = c.span(loc);
                        c.warnings.push_at(
                            Severity::Warning,
                            Code::UnsupportedIdentity,
                            off,
                            len,
                            message,
                            Some("a service principal's run fails".to_string()),
                            Some(help.to_string()),
                        );
                    }
                    None => c.warnings.push_global(
                        Severity::Warning,
                        Code::UnsupportedIdentity,
                        format!("{message}; {help}"),
                    ),
                }
            }
            StepKind::FabricJob(f) => {
                // The same table the strict simulator applies (src/sim/item_jobs.rs), copied
                // from the "Microsoft Entra supported identities" table of the item's own run
                // operation in the specs.
                let Some(row) =
                    crate::sim::item_job_identity(f.item_type.fabric_type()).filter(|row| !row.app)
                else {
                    continue;
                };
                let loc = raw_step
                    .item_type
                    .as_ref()
                    .map(|t| t.loc())
                    .unwrap_or_else(|| raw_step.step_type.loc());
                c.error_help(Code::UnsupportedIdentity,
                    loc,
                    format!(
                        "step `{id}`: Fabric runs a {} job for a signed-in user only ({} in {} lists no service principal): {who}",
                        f.item_type.noun(),
                        row.operation_id,
                        row.spec
                    ),
                    "not with an app-only connection",
                    Some("use a connection with a user's token (`access_token`, or the Azure CLI login) for this step's `connection:`".into()),
                );
            }
            _ => {}
        }
    }
}

/// The service answers 400 `Invalid NotifyOption value 'MailOnFailure' for app only owner
/// requests`: an application has no mailbox to send to.
fn mail_notify(
    c: &mut Checker<'_>,
    raw_step: &crate::job::raw::RawStep,
    notify: NotifyOption,
    who: &str,
) {
    let wire = match notify {
        NotifyOption::NoNotification => return,
        NotifyOption::MailOnFailure => "MailOnFailure",
        NotifyOption::MailOnCompletion => "MailOnCompletion",
    };
    let Some(n) = &raw_step.notify else {
        return;
    };
    c.error_help(Code::UnsupportedIdentity,
        n.loc(),
        format!(
            "the service refuses mail notifications for an application: {who}, and Power BI answers 400 \"Invalid NotifyOption value '{wire}' for app only owner requests\""
        ),
        "not with an app-only connection",
        Some(
            "use `notify: no_notification` (and a `webhook` step with `trigger: one_failed` to hear about failures), or a connection with a user's token"
                .into(),
        ),
    );
}
