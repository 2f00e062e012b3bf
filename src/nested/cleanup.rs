//! What `clean` removes besides the instance's container: volumes, images,
//! dangling leftovers, and a data dir with root-owned files.

use std::collections::HashMap;
use std::path::Path;

use bollard::query_parameters::{
    ListVolumesOptionsBuilder, PruneImagesOptionsBuilder, PruneVolumesOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};

use super::docker::{api_failure, Engine};
use crate::error::{Failure, Result};

impl Engine {
    /// Volumes that belong to the instance: labelled by boxvirt or made by
    /// the original compose project `boxman-<instance>`.
    pub fn instance_volumes(&self, instance: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for label in [
            format!("{}={instance}", super::LABEL_INSTANCE),
            format!("com.docker.compose.project=boxman-{instance}"),
        ] {
            let mut filters = HashMap::new();
            filters.insert("label".to_string(), vec![label]);
            let opts = ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build();
            let list = self
                .block_on(self.docker.list_volumes(Some(opts)))
                .map_err(|e| api_failure("cannot list volumes", e))?;
            names.extend(list.volumes.unwrap_or_default().into_iter().map(|v| v.name));
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    pub fn remove_volume(&self, name: &str) -> Result<()> {
        let opts = RemoveVolumeOptionsBuilder::default().force(false).build();
        self.block_on(self.docker.remove_volume(name, Some(opts)))
            .map_err(|e| api_failure(format!("cannot remove volume {name}"), e))
    }

    /// `docker image prune` + `docker volume prune` (system-wide, like the
    /// original `make clean-dangling`). Returns (images, volumes, bytes).
    pub fn prune_dangling(&self) -> Result<(usize, usize, i64)> {
        let mut filters = HashMap::new();
        filters.insert("dangling".to_string(), vec!["true".to_string()]);
        let images = self
            .block_on(
                self.docker.prune_images(Some(
                    PruneImagesOptionsBuilder::default()
                        .filters(&filters)
                        .build(),
                )),
            )
            .map_err(|e| api_failure("cannot prune images", e))?;
        let volumes = self
            .block_on(
                self.docker
                    .prune_volumes(Some(PruneVolumesOptionsBuilder::default().build())),
            )
            .map_err(|e| api_failure("cannot prune volumes", e))?;
        Ok((
            images.images_deleted.map(|v| v.len()).unwrap_or(0),
            volumes.volumes_deleted.map(|v| v.len()).unwrap_or(0),
            images.space_reclaimed.unwrap_or(0) + volumes.space_reclaimed.unwrap_or(0),
        ))
    }

    /// Empties `dir` from inside a throwaway container of `image` (root
    /// there), for files the container's root left that the host user cannot
    /// delete; no sudo on the host.
    pub fn empty_dir_in_container(&self, image: &str, dir: &Path, instance: &str) -> Result<()> {
        let bind = (dir.to_path_buf(), "/boxvirt-clean".to_string());
        let name = format!("boxvirt-clean-{instance}-{}", std::process::id());
        let code = self.run_once(
            image,
            vec![bind],
            vec![
                "find".into(),
                "/boxvirt-clean".into(),
                "-mindepth".into(),
                "1".into(),
                "-delete".into(),
            ],
            &name,
        )?;
        if code != 0 {
            return Err(Failure::failed(format!(
                "the helper container could not empty {} (exit {code})",
                dir.display()
            )));
        }
        Ok(())
    }
}
