//! `pbibatch discover`: the estate (table or JSON), its lineage, a job skeleton.

use crate::cli::{DiscoverArgs, TableFormat};
use crate::discover::{
    DiscoverError, DiscoverOptions, Target, TargetOptions, discover, emit, render,
};
use crate::error::{Error, exit};

/// `pbibatch discover`: prints the estate (table or JSON), its lineage, and writes a job
/// skeleton. Exit 0, 1 when a remote call failed, 2 for bad input.
pub(super) fn command(args: &DiscoverArgs) -> Result<u8, Error> {
    super::load::runtime()?.block_on(command_async(args))
}

async fn command_async(args: &DiscoverArgs) -> Result<u8, Error> {
    let target = Target::for_discover(&TargetOptions {
        job: args.job.as_deref(),
        connection: args.connection.as_deref(),
        simulate: args.simulate,
        sim_profile: args.sim_profile.as_deref(),
    })
    .await?;
    let options = DiscoverOptions {
        workspaces: args.workspace.clone(),
        // The skeleton's depends_on come from the lineage.
        lineage: args.lineage || args.emit_job.is_some(),
    };
    let result = discover(&target.client, &target.connection, &options).await;
    target.shutdown().await;
    let estate = match result {
        Ok(estate) => estate,
        Err(e @ DiscoverError::UnknownWorkspace { .. }) => {
            return Err(e.into());
        }
        Err(e) => {
            eprintln!("error: {e}");
            if let DiscoverError::Client { source, .. } = &e
                && let Some(advice) = crate::discover::auth::advice(source)
            {
                eprintln!("  {advice}");
            }
            return Ok(exit::FAILED);
        }
    };
    let text = match args.format {
        TableFormat::Table => {
            let mut t = render::table(&estate);
            if args.lineage {
                t.push('\n');
                t.push_str(&render::lineage_table(&estate));
                t.push('\n');
                t.push_str(&render::mermaid(&estate));
            }
            t
        }
        TableFormat::Json => {
            let mut shown = estate.clone();
            if !args.lineage {
                shown.lineage = None;
            }
            render::json(&shown)
        }
    };
    crate::stdout::write(&text)?;
    if let Some(path) = &args.emit_job {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::io("failed to read the current directory".to_string(), e))?;
        let schema = emit::schema_path_for(path, &cwd);
        let options = emit::EmitOptions {
            schema: schema.path,
            ..emit::EmitOptions::default()
        };
        let skeleton = emit::job_skeleton(&estate, &options);
        std::fs::write(path, &skeleton.text)
            .map_err(|e| Error::io(format!("failed to write {}", path.display()), e))?;
        eprintln!(
            "wrote a job skeleton with {} step{} to {}; review the lines marked DECIDE, then `pbibatch validate {}`",
            skeleton.steps,
            if skeleton.steps == 1 { "" } else { "s" },
            path.display(),
            path.display()
        );
        if !schema.found {
            eprintln!(
                "no schemas/pbibatch-job.schema.json above {}: its `$schema` comment names the one `pbibatch schema > schemas/pbibatch-job.schema.json` writes here",
                path.display()
            );
        }
    }
    Ok(exit::OK)
}
