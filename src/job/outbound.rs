//! Where a run of a job sends requests, as plain data ([`Outbound`]): the walk over the job's
//! steps and connections happens here, so the client's plain-`http://` guard
//! ([`crate::powerbi::check_urls`]) knows nothing of step types.

use super::model::{Cloud, Credentials, Job, StepKind};
use crate::secret::Secret;

/// What a run of a job calls.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    /// A step calls the Power BI / Fabric service (it works in a workspace).
    pub service: bool,
    /// The clouds of the connections those steps use, first use first (empty: the default).
    pub clouds: Vec<Cloud>,
    /// A connection gets its tokens from a managed identity (IMDS / the identity endpoint).
    pub managed_identity: bool,
    /// URLs steps call directly (`sas_flow`, `webhook`), each with how a message names it.
    pub step_urls: Vec<(String, Secret)>,
}

impl Job {
    /// Where a run of this job sends requests.
    pub fn outbound(&self) -> Outbound {
        let mut out = Outbound::default();
        for step in self.steps.values() {
            if step.kind.workspace().is_none() {
                continue;
            }
            out.service = true;
            if let Some(conn) = self.connections.get(&step.connection)
                && !out.clouds.contains(&conn.cloud)
            {
                out.clouds.push(conn.cloud);
            }
        }
        out.managed_identity = self
            .connections
            .values()
            .any(|c| matches!(c.credentials, Credentials::ManagedIdentity { .. }));
        for step in self.steps.values() {
            let url = match &step.kind {
                StepKind::SasFlow(s) => &s.url,
                StepKind::Webhook(s) => &s.url,
                _ => continue,
            };
            out.step_urls
                .push((format!("step `{}` url", step.id), url.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_the_service_and_the_urls_steps_call() {
        let yaml = concat!(
            "version: 1\nname: t\nsteps:\n",
            "  model: { type: dataset, workspace: W, dataset: D }\n",
            "  hook: { type: webhook, url: \"https://h.example.com/x?sig=s\", depends_on: [model] }\n",
        );
        let job = crate::job::load_bytes("t.yaml", yaml.as_bytes(), &[], &|_| None)
            .unwrap()
            .job;
        let out = job.outbound();
        assert!(out.service);
        let urls: Vec<(&str, &str)> = out
            .step_urls
            .iter()
            .map(|(what, url)| (what.as_str(), url.expose()))
            .collect();
        assert_eq!(urls, [("step `hook` url", "https://h.example.com/x?sig=s")]);

        let only_hooks = concat!(
            "version: 1\nname: t\nsteps:\n",
            "  hook: { type: webhook, url: \"https://h.example.com/x\" }\n",
        );
        let job = crate::job::load_bytes("t.yaml", only_hooks.as_bytes(), &[], &|_| None)
            .unwrap()
            .job;
        assert!(!job.outbound().service);
    }
}
