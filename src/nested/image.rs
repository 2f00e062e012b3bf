//! The nested-host image: is it there and current, and building it.

use std::collections::HashMap;

use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListImagesOptionsBuilder, RemoveImageOptionsBuilder,
};
use futures_util::StreamExt;

use super::build_context::{self, Asset};
use super::docker::{api_failure, first_line, is_not_found, Engine};
use super::{LABEL_ASSETS, LABEL_BASE};
use crate::cli::Base;
use crate::error::{Failure, Result};
use crate::output::Output;
use crate::progress::Spinner;

/// What the engine has under a tag.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub id: String,
    pub assets: Option<String>,
}

/// Whether `up` has to build: the image is missing or was built from other
/// docker/ assets than the ones in this binary.
pub fn needs_build(image: Option<&ImageInfo>, assets_hash: &str) -> bool {
    image.is_none_or(|i| i.assets.as_deref() != Some(assets_hash))
}

impl Engine {
    pub fn image(&self, name: &str) -> Result<Option<ImageInfo>> {
        match self.block_on(self.docker.inspect_image(name)) {
            Ok(i) => Ok(Some(ImageInfo {
                id: i.id.unwrap_or_default(),
                assets: i
                    .config
                    .and_then(|c| c.labels)
                    .and_then(|l| l.get(LABEL_ASSETS).cloned()),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api_failure(format!("cannot inspect image {name}"), e)),
        }
    }

    /// Every tag of the nested-host repository (all bases).
    pub fn nested_images(&self) -> Result<Vec<(String, String)>> {
        let mut filters = HashMap::new();
        filters.insert(
            "reference".to_string(),
            vec![format!("{}:*", build_context::IMAGE_REPO)],
        );
        let opts = ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = self
            .block_on(self.docker.list_images(Some(opts)))
            .map_err(|e| api_failure("cannot list images", e))?;
        let mut out = Vec::new();
        for img in list {
            for tag in img.repo_tags {
                out.push((tag, img.id.clone()));
            }
        }
        Ok(out)
    }

    pub fn remove_image(&self, name: &str) -> Result<()> {
        let opts = RemoveImageOptionsBuilder::default().build();
        self.block_on(self.docker.remove_image(name, Some(opts), None))
            .map(|_| ())
            .map_err(|e| api_failure(format!("cannot remove image {name}"), e))
    }

    /// Builds `boxvirt/nested-host:<base>` from the embedded docker/ assets.
    /// Returns the image id. The log streams with -v; a failure names the step.
    pub fn build_image(&self, base: Base, no_cache: bool, out: &Output) -> Result<String> {
        let assets = build_context::context();
        let tag = build_context::image_tag(base);
        let dockerfile = build_context::dockerfile(base);
        if !assets.iter().any(|a| a.path == dockerfile) {
            return Err(Failure::failed(format!(
                "this boxvirt has no docker/{dockerfile} embedded; cannot build {tag}"
            )));
        }
        let hint = self.base_image_hint(&assets, dockerfile)?;
        if !hint.is_empty() {
            out.warn(format!(
                "{}; docker will try to pull it",
                hint.trim_start_matches("; ")
            ));
        }
        let hash = build_context::assets_hash(&assets);
        let body = build_context::tar(&assets)?;

        let labels: HashMap<&str, &str> = [
            (LABEL_ASSETS, hash.as_str()),
            (LABEL_BASE, build_context::base_name(base)),
        ]
        .into_iter()
        .collect();
        let opts = BuildImageOptionsBuilder::default()
            .dockerfile(dockerfile)
            .t(&tag)
            .nocache(no_cache)
            .rm(true)
            .forcerm(true)
            .labels(&labels)
            .build();

        let progress = Spinner::new(out);
        progress.stage(format!(
            "building {tag}{}",
            if no_cache { " (no cache)" } else { "" }
        ));
        let started = std::time::Instant::now();
        let mut step = String::new();
        let mut tail: Vec<String> = Vec::new();
        let mut image_id = None;
        let result: Result<()> = self.block_on(async {
            let mut stream =
                self.docker
                    .build_image(opts, None, Some(bollard::body_full(body.into())));
            while let Some(item) = stream.next().await {
                let info =
                    item.map_err(|e| build_failure(&step, &first_line(&e.to_string()), &hint))?;
                if let Some(text) = info.stream.as_deref() {
                    for line in text
                        .lines()
                        .map(str::trim_end)
                        .filter(|l| !l.trim().is_empty())
                    {
                        if line.starts_with("Step ") {
                            step = line.to_string();
                            if progress.is_terminal() {
                                progress.tick(format!("building {tag}: {}", shorten(line, 70)));
                            } else if out.verbose == 0 {
                                out.note(shorten(line, 120));
                            }
                        }
                        if out.verbose > 0 {
                            progress.line(line);
                        }
                        tail.push(line.to_string());
                        if tail.len() > 20 {
                            tail.remove(0);
                        }
                    }
                }
                if let Some(id) = info.aux.as_ref().and_then(|a| a.id.clone()) {
                    image_id = Some(id);
                }
                if let Some(detail) = info.error_detail {
                    let msg = detail.message.unwrap_or_default();
                    return Err(build_failure(&step, &first_line(&msg), &hint));
                }
            }
            Ok(())
        });
        progress.finish();
        if let Err(e) = result {
            if out.verbose == 0 {
                for line in tail.iter().rev().take(8).rev() {
                    eprintln!("  | {line}");
                }
            }
            return Err(e);
        }
        let id = match image_id {
            Some(id) => id,
            None => self.image(&tag)?.map(|i| i.id).ok_or_else(|| {
                Failure::failed(format!("the build of {tag} ended without an image"))
            })?,
        };
        out.note(format!("built {tag} in {} s", started.elapsed().as_secs()));
        Ok(id)
    }

    /// Warns when the Dockerfile's base image is absent (nothing can be
    /// pulled on many machines) and returns a hint for a failed build.
    fn base_image_hint(&self, assets: &[Asset], dockerfile: &str) -> Result<String> {
        let Some(from) = build_context::from_image(assets, dockerfile) else {
            return Ok(String::new());
        };
        if self.image(&from)?.is_some() {
            return Ok(String::new());
        }
        Ok(format!(
            "; the base image {from} is not present locally and may not be pullable here (tests/harness/base-image.sh makes debian:bookworm-slim offline)"
        ))
    }
}

fn build_failure(step: &str, msg: &str, hint: &str) -> Failure {
    let at = if step.is_empty() {
        String::new()
    } else {
        format!(" at {}", shorten(step, 100))
    };
    Failure::failed(format!(
        "image build failed{at}: {msg}{hint}; rerun with -v for the build log"
    ))
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuild_only_when_missing_or_assets_changed() {
        let img = ImageInfo {
            id: "sha256:1".into(),
            assets: Some("abc".into()),
        };
        assert!(needs_build(None, "abc"));
        assert!(!needs_build(Some(&img), "abc"));
        assert!(needs_build(Some(&img), "def"));
        assert!(needs_build(
            Some(&ImageInfo {
                id: "x".into(),
                assets: None
            }),
            "abc"
        ));
    }

    #[test]
    fn build_failure_names_the_step() {
        let f = build_failure(
            "Step 3/9 : RUN apt-get update",
            "returned a non-zero code: 100",
            "",
        );
        assert!(
            f.message
                .contains("at Step 3/9 : RUN apt-get update: returned a non-zero code: 100"),
            "{}",
            f.message
        );
    }
}
