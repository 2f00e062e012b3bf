//! `image build` recipes (docker/image-build/NAME.sh) run in a throwaway
//! container of the nested-host image: it has apt, the Debian mirror in its
//! apt sources and the tools (debootstrap, sfdisk, mtools, mkfs, qemu-img),
//! so the user's host needs nothing but Docker. The recipe files are copied
//! into the container (no host path of a checkout is needed), the output dir
//! is bind-mounted, and the container is removed however the run ends.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    UploadToContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::build_context::{self, Asset};
use super::docker::{api_failure, Engine};
use crate::error::{Failure, Result};
use crate::interrupt;

/// Where the recipe files land inside the container (docker/ layout kept).
const RECIPE_ROOT: &str = "/boxvirt-build";
/// The bind-mounted output directory inside the container.
const OUT: &str = "/out";
/// Container label: which recipe a build container runs (for `docker ps`).
const LABEL_RECIPE: &str = "io.boxvirt.image-build";
/// debootstrap mounts /proc and /sys in its chroot (SYS_ADMIN, and no
/// AppArmor/seccomp profile that forbids mount) and makes device nodes
/// (MKNOD). No loop device and no device of the host is passed.
const CAPABILITIES: &[&str] = &["SYS_ADMIN", "MKNOD"];
/// A recipe line that names a stage (shown as progress).
const STAGE_PREFIX: &str = "==> ";

/// One recipe run.
pub struct RecipeRun<'a> {
    /// Runs `image-build/<recipe>.sh OUT`.
    pub recipe: &'a str,
    /// The nested-host image (id or tag).
    pub image: &'a str,
    /// The files of docker/image-build/ (paths relative to docker/).
    pub files: &'a [Asset],
    /// Host directory bind-mounted as the recipe's output directory.
    pub out_dir: &'a Path,
    /// uid:gid the outputs are handed to (the recipe runs as root).
    pub owner: (u32, u32),
}

/// A line of the recipe's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Stage(String),
    Log(String),
}

impl Line {
    fn parse(text: &str) -> Line {
        match text.strip_prefix(STAGE_PREFIX) {
            Some(stage) => Line::Stage(stage.trim().to_string()),
            None => Line::Log(text.to_string()),
        }
    }
}

/// The files of docker/image-build/ embedded in this binary.
pub fn recipe_files() -> Vec<Asset> {
    build_context::embedded_under("image-build/")
}

impl Engine {
    /// Runs the recipe to its end, passing every output line to `on_line`.
    /// Fails with the recipe's exit code, or when interrupted (Ctrl-C while
    /// an [`interrupt::Deferred`] guard lives). The container is always removed.
    pub fn run_recipe(&self, run: &RecipeRun, on_line: &mut dyn FnMut(Line)) -> Result<()> {
        let name = format!("boxvirt-image-build-{}-{}", run.recipe, std::process::id());
        self.create_recipe_container(run, &name)?;
        let result = self.upload_recipe(run, &name).and_then(|()| {
            self.start(&name)?;
            self.follow(&name, on_line)?;
            self.exit_code(&name)
        });
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        let removed = self.block_on(self.docker.remove_container(&name, Some(opts)));
        let code = result?;
        if let Err(e) = removed {
            return Err(api_failure(
                format!("cannot remove build container {name}"),
                e,
            ));
        }
        match code {
            0 => Ok(()),
            code => Err(Failure::failed(format!(
                "the {} recipe failed (exit {code})",
                run.recipe
            ))),
        }
    }

    fn create_recipe_container(&self, run: &RecipeRun, name: &str) -> Result<()> {
        let script = format!("{RECIPE_ROOT}/image-build/{}.sh", run.recipe);
        // The outputs are handed to the user whatever the recipe's result.
        let entry = format!(
            "bash {script} {OUT}; rc=$?; chown -R {}:{} {OUT}; exit $rc",
            run.owner.0, run.owner.1
        );
        let labels: HashMap<String, String> =
            [(LABEL_RECIPE.to_string(), run.recipe.to_string())].into();
        let body = ContainerCreateBody {
            image: Some(run.image.to_string()),
            entrypoint: Some(vec!["bash".into(), "-c".into(), entry]),
            cmd: Some(vec![]),
            labels: Some(labels),
            // The image's health check is the nested host's, not the recipe's.
            healthcheck: Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{}:{OUT}", run.out_dir.display())]),
                cap_add: Some(CAPABILITIES.iter().map(|c| c.to_string()).collect()),
                security_opt: Some(vec![
                    "seccomp=unconfined".into(),
                    "apparmor=unconfined".into(),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        self.block_on(self.docker.create_container(Some(opts), body))
            .map_err(|e| api_failure(format!("cannot create build container {name}"), e))?;
        Ok(())
    }

    fn upload_recipe(&self, run: &RecipeRun, name: &str) -> Result<()> {
        // Docker makes the missing parent directories of the entries.
        let under_root: Vec<Asset> = run
            .files
            .iter()
            .map(|a| Asset {
                path: format!("{}/{}", RECIPE_ROOT.trim_start_matches('/'), a.path),
                ..a.clone()
            })
            .collect();
        let tar = build_context::tar(&under_root)?;
        let opts = UploadToContainerOptionsBuilder::default().path("/").build();
        self.block_on(self.docker.upload_to_container(
            name,
            Some(opts),
            bollard::body_full(tar.into()),
        ))
        .map_err(|e| api_failure(format!("cannot copy the recipe into {name}"), e))
    }

    /// Streams the container's output line by line until it exits; stops
    /// early (the caller removes the container) when a signal arrived.
    fn follow(&self, name: &str, on_line: &mut dyn FnMut(Line)) -> Result<()> {
        let opts = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        self.block_on(async {
            let mut logs = self.docker.logs(name, Some(opts));
            let mut partial = String::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    item = logs.next() => match item {
                        None => break,
                        Some(Ok(chunk)) => {
                            let bytes = match chunk {
                                LogOutput::StdOut { message }
                                | LogOutput::StdErr { message }
                                | LogOutput::Console { message } => message,
                                LogOutput::StdIn { .. } => continue,
                            };
                            partial.push_str(&String::from_utf8_lossy(&bytes));
                            while let Some(end) = partial.find('\n') {
                                let line: String = partial.drain(..=end).collect();
                                on_line(Line::parse(line.trim_end()));
                            }
                        }
                        Some(Err(e)) => {
                            return Err(api_failure(format!("reading the output of {name}"), e))
                        }
                    },
                    _ = tick.tick() => interrupt::check("image build")?,
                }
            }
            if !partial.trim().is_empty() {
                on_line(Line::parse(partial.trim_end()));
            }
            interrupt::check("image build")
        })
    }

    fn exit_code(&self, name: &str) -> Result<i64> {
        self.block_on(async {
            let opts = WaitContainerOptionsBuilder::default().build();
            let mut wait = self.docker.wait_container(name, Some(opts));
            let mut code = 0;
            while let Some(item) = wait.next().await {
                match item {
                    Ok(r) => code = r.status_code,
                    Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => {
                        code = c
                    }
                    Err(e) => return Err(api_failure(format!("waiting for {name}"), e)),
                }
            }
            Ok(code)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_lines_are_told_apart_from_log_lines() {
        assert_eq!(
            Line::parse("==> debootstrap bookworm"),
            Line::Stage("debootstrap bookworm".into())
        );
        assert_eq!(
            Line::parse("I: Retrieving Release"),
            Line::Log("I: Retrieving Release".into())
        );
    }

    #[test]
    fn the_embedded_recipes_are_there() {
        let files = recipe_files();
        let names: Vec<&str> = files.iter().map(|a| a.path.as_str()).collect();
        for want in [
            "image-build/debian12.sh",
            "image-build/tiny.sh",
            "image-build/tiny/init",
        ] {
            assert!(names.contains(&want), "{names:?}");
        }
    }
}
