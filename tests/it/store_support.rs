//! Builders shared by the store tests: scripted event streams and a recorder over them.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use pbibatch::event::{
    AttemptUpdate, Counts, RemoteHandle, ResourceRef, RunEvent, RunEventKind, RunStatus, StepInfo,
    StepStatus, stamp,
};
use pbibatch::store::{Endpoints, RunMeta, RunTarget, ServiceTarget, Store, StoreRecorder};

/// A fixed clock: `at(s)` is `s` seconds after 2026-03-01 02:00:00 UTC.
pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

/// An enhanced-refresh handle with a recognisable request id.
pub(crate) fn enhanced(request_id: &str) -> RemoteHandle {
    RemoteHandle::EnhancedRefresh {
        workspace_id: "ws-1".into(),
        dataset_id: "ds-1".into(),
        request_id: Some(request_id.into()),
        known_before: Vec::new(),
    }
}

/// An event stream written the way the engine emits it.
pub(crate) struct Script {
    pub run_id: String,
    pub events: Vec<RunEvent>,
}

impl Script {
    pub(crate) fn new(run_id: &str) -> Script {
        Script {
            run_id: run_id.into(),
            events: Vec::new(),
        }
    }

    fn push(&mut self, secs: i64, kind: RunEventKind) -> &mut Self {
        let seq = self.events.len() as u64;
        self.events.push(RunEvent {
            seq,
            at: at(secs),
            kind,
        });
        stamp(&mut self.events);
        self
    }

    /// `RunStarted` with `(id, type)` steps, each depending on the one before.
    pub(crate) fn started(
        &mut self,
        secs: i64,
        job: &str,
        steps: &[(&str, &str)],
        resumed_from: Option<&str>,
    ) -> &mut Self {
        let mut infos = Vec::new();
        let mut previous: Option<&str> = None;
        for (id, ty) in steps {
            infos.push(StepInfo {
                id: id.to_string(),
                step_type: ty.to_string(),
                resource: format!("Data Admin / {id}"),
                depends_on: previous.map(|p| vec![p.to_string()]).unwrap_or_default(),
                expected: None,
            });
            previous = Some(id);
        }
        let kind = RunEventKind::RunStarted {
            run_id: self.run_id.clone(),
            job: job.into(),
            job_file: format!("jobs/{job}.yaml"),
            steps: infos,
            resumed_from: resumed_from.map(str::to_string),
        };
        self.push(secs, kind)
    }

    pub(crate) fn attempt(&mut self, secs: i64, step: &str, attempt: u32) -> &mut Self {
        self.push(
            secs,
            RunEventKind::AttemptStarted {
                step: step.into(),
                attempt,
            },
        )
    }

    pub(crate) fn progress(
        &mut self,
        secs: i64,
        step: &str,
        attempt: u32,
        update: AttemptUpdate,
    ) -> &mut Self {
        self.push(
            secs,
            RunEventKind::StepProgress {
                step: step.into(),
                attempt,
                update,
            },
        )
    }

    /// Progress that carries a handle, a remote id, a status and the resolved resource.
    pub(crate) fn handle(
        &mut self,
        secs: i64,
        step: &str,
        attempt: u32,
        handle: RemoteHandle,
    ) -> &mut Self {
        let remote_id = match &handle {
            RemoteHandle::EnhancedRefresh { request_id, .. } => request_id.clone(),
            _ => None,
        };
        self.progress(
            secs,
            step,
            attempt,
            AttemptUpdate {
                remote_status: Some("NotStarted".into()),
                remote_id,
                resource: Some(ResourceRef {
                    workspace_id: Some("ws-1".into()),
                    item_id: Some(format!("{step}-id")),
                    name: step.into(),
                }),
                handle: Some(handle),
                ..AttemptUpdate::default()
            },
        )
    }

    pub(crate) fn attempt_end(
        &mut self,
        secs: i64,
        step: &str,
        attempt: u32,
        status: StepStatus,
        error: Option<&str>,
        retry: bool,
    ) -> &mut Self {
        self.push(
            secs,
            RunEventKind::AttemptFinished {
                step: step.into(),
                attempt,
                status,
                error: error.map(str::to_string),
                remote_id: None,
                retry_in: retry.then_some(Duration::from_secs(30)),
            },
        )
    }

    pub(crate) fn step_end(
        &mut self,
        secs: i64,
        step: &str,
        status: StepStatus,
        reason: Option<&str>,
        attempts: u32,
    ) -> &mut Self {
        self.push(
            secs,
            RunEventKind::StepFinished {
                step: step.into(),
                status,
                reason: reason.map(str::to_string),
                attempts,
                adopted: false,
                duration: None,
                counts: Counts::default(),
                running: 0,
                overran: false,
            },
        )
    }

    /// One attempt from start to end, then the step's end.
    pub(crate) fn simple(
        &mut self,
        start: i64,
        end: i64,
        step: &str,
        status: StepStatus,
        error: Option<&str>,
    ) -> &mut Self {
        self.attempt(start, step, 1)
            .attempt_end(end, step, 1, status, error, false)
            .step_end(end, step, status, error, 1)
    }

    pub(crate) fn finished(&mut self, secs: i64, status: RunStatus) -> &mut Self {
        self.push(
            secs,
            RunEventKind::RunFinished {
                status,
                counts: Counts::default(),
                duration: Duration::ZERO,
            },
        )
    }
}

/// The tenant the store tests' runs ran against.
pub(crate) const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// A run against [`TENANT`] on the public cloud's default hosts.
pub(crate) fn tenant_target() -> RunTarget {
    RunTarget::Service(ServiceTarget {
        tenants: vec![TENANT.into()],
        endpoints: vec![Endpoints {
            cloud: "public".into(),
            powerbi_url: "https://api.powerbi.com".into(),
            fabric_url: "https://api.fabric.microsoft.com".into(),
            authority_url: "https://login.microsoftonline.com".into(),
        }],
    })
}

/// Meta with a job hash and one hash per step (`h-<id>`), of a run against [`TENANT`].
pub(crate) fn meta(job_hash: &str, steps: &[&str]) -> RunMeta {
    RunMeta {
        job_hash: job_hash.into(),
        arguments: serde_json::json!({ "select": [], "fail_fast": false }),
        step_hashes: steps
            .iter()
            .map(|s| (s.to_string(), format!("h-{s}")))
            .collect(),
        target: tenant_target(),
    }
}

/// Records every event of `script` into the store at `path`.
pub(crate) fn record(path: &Path, meta: RunMeta, script: &Script) {
    let mut recorder = StoreRecorder::new(Store::open(path).unwrap(), meta);
    for ev in &script.events {
        recorder.record(ev).unwrap();
    }
}

/// The four steps of the `order_list` job used across the store tests.
pub(crate) const ORDER_LIST: [(&str, &str); 4] = [
    ("master_order_list", "sas_flow"),
    ("order_list_model", "dataset"),
    ("order_book_pdf", "report"),
    ("tell_teams", "webhook"),
];

/// A run of `order_list` that failed: the model failed twice, the rest did not run.
pub(crate) fn failed_run(run_id: &str, start: i64) -> Script {
    let mut s = Script::new(run_id);
    s.started(start, "order_list", &ORDER_LIST, None)
        .simple(
            start,
            start + 12,
            "master_order_list",
            StepStatus::Succeeded,
            None,
        )
        .attempt(start + 12, "order_list_model", 1)
        .handle(start + 13, "order_list_model", 1, enhanced("req-1"))
        .attempt_end(
            start + 40,
            "order_list_model",
            1,
            StepStatus::Failed,
            Some("capacity is overloaded"),
            true,
        )
        .attempt(start + 70, "order_list_model", 2)
        .handle(start + 71, "order_list_model", 2, enhanced("req-2"))
        .attempt_end(
            start + 100,
            "order_list_model",
            2,
            StepStatus::Failed,
            Some("capacity is overloaded"),
            false,
        )
        .step_end(
            start + 100,
            "order_list_model",
            StepStatus::Failed,
            Some("capacity is overloaded"),
            2,
        )
        .step_end(
            start + 100,
            "order_book_pdf",
            StepStatus::UpstreamFailed,
            Some("dependency order_list_model failed"),
            0,
        )
        .step_end(
            start + 100,
            "tell_teams",
            StepStatus::UpstreamFailed,
            Some("dependency order_book_pdf upstream_failed"),
            0,
        )
        .finished(start + 100, RunStatus::Failed);
    s
}

/// A run of `order_list` where every step succeeded.
pub(crate) fn good_run(run_id: &str, start: i64) -> Script {
    let mut s = Script::new(run_id);
    s.started(start, "order_list", &ORDER_LIST, None)
        .simple(
            start,
            start + 10,
            "master_order_list",
            StepStatus::Succeeded,
            None,
        )
        .attempt(start + 10, "order_list_model", 1)
        .handle(start + 11, "order_list_model", 1, enhanced("req-9"))
        .attempt_end(
            start + 70,
            "order_list_model",
            1,
            StepStatus::Succeeded,
            None,
            false,
        )
        .step_end(
            start + 70,
            "order_list_model",
            StepStatus::Succeeded,
            None,
            1,
        )
        .simple(
            start + 70,
            start + 90,
            "order_book_pdf",
            StepStatus::Succeeded,
            None,
        )
        .simple(
            start + 90,
            start + 91,
            "tell_teams",
            StepStatus::Succeeded,
            None,
        )
        .finished(start + 91, RunStatus::Succeeded);
    s
}
