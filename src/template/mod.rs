//! XML templates: built-in ones embedded from `xml-templates/`, overridable by
//! files in a user directory (`--template-dir`, `BOXVIRT_TEMPLATE_DIR`) laid
//! out the same way (`domain/NAME.xml`, `network/NAME.xml`, `pool/NAME.xml`).

pub mod nics;
pub mod params;
pub mod render;

use std::path::{Path, PathBuf};

pub use params::Kind;
use params::Target;
use render::Edit;

use crate::error::{Failure, Result};

const BUILTIN: &[(Kind, &str, &str)] = &[
    (
        Kind::Domain,
        "rocky9",
        include_str!("../../xml-templates/domain/rocky9.xml"),
    ),
    (
        Kind::Domain,
        "ubuntu24",
        include_str!("../../xml-templates/domain/ubuntu24.xml"),
    ),
    (
        Kind::Domain,
        "debian12",
        include_str!("../../xml-templates/domain/debian12.xml"),
    ),
    (
        Kind::Domain,
        "tiny",
        include_str!("../../xml-templates/domain/tiny.xml"),
    ),
    (
        Kind::Network,
        "default",
        include_str!("../../xml-templates/network/default.xml"),
    ),
    (
        Kind::Network,
        "isolated",
        include_str!("../../xml-templates/network/isolated.xml"),
    ),
    (
        Kind::Pool,
        "default",
        include_str!("../../xml-templates/pool/default.xml"),
    ),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    User(PathBuf),
}

impl Origin {
    pub fn describe(&self) -> String {
        match self {
            Origin::Builtin => "built-in".to_string(),
            Origin::User(p) => p.display().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Template {
    pub kind: Kind,
    pub name: String,
    pub origin: Origin,
    pub xml: String,
}

impl Template {
    /// How error messages name this template.
    pub fn label(&self) -> String {
        match &self.origin {
            Origin::Builtin => format!("{}/{}.xml (built-in)", self.kind.dir(), self.name),
            Origin::User(p) => p.display().to_string(),
        }
    }

    /// The parameters this template has an element for.
    pub fn parameters(&self) -> Vec<&'static str> {
        self.kind
            .params()
            .iter()
            .filter(|p| {
                p.targets.iter().any(|t| match t {
                    Target::Text(path) | Target::Attr(path, _) => {
                        crate::xml::find_first(&self.xml, path).is_some()
                    }
                    Target::FixedAttr(..) => false,
                })
            })
            .map(|p| p.key)
            .collect()
    }

    /// Apply `key=value` parameters; unknown keys, bad values and parameters
    /// whose element the template lacks are errors.
    pub fn render(&self, sets: &[(String, String)]) -> Result<String> {
        let mut edits = Vec::new();
        let mut owners = Vec::new();
        for (key, value) in sets {
            let param = params::find(self.kind, key)?;
            let value = params::check_value(param, value)?;
            for target in param.targets {
                edits.push(Edit {
                    target: *target,
                    value: value.clone(),
                });
                owners.push(param);
            }
        }
        let rendered = render::render(&self.label(), &self.xml, &edits)?;
        if let Some(param) = params::find_unmatched(&owners, &edits, &rendered.matched).first() {
            let wanted: Vec<String> = param
                .targets
                .iter()
                .filter(|t| !matches!(t, Target::FixedAttr(..)))
                .map(render::describe)
                .collect();
            return Err(Failure::usage(format!(
                "template {} has no {} for parameter '{}'",
                self.label(),
                wanted.join(" or "),
                param.key
            )));
        }
        Ok(rendered.xml)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    user_dir: Option<PathBuf>,
}

impl Catalog {
    pub fn new(user_dir: Option<PathBuf>) -> Self {
        Catalog { user_dir }
    }

    fn user_path(&self, kind: Kind, name: &str) -> Option<PathBuf> {
        self.user_dir
            .as_ref()
            .map(|d| d.join(kind.dir()).join(format!("{name}.xml")))
    }

    /// The user's file if there is one, else the built-in template.
    pub fn get(&self, kind: Kind, name: &str) -> Result<Template> {
        crate::names::validate(&format!("{} template", kind.dir()), name)?;
        // A mistyped dir must not silently fall back to the built-ins.
        if let Some(dir) = self.user_dir.as_ref().filter(|d| !d.is_dir()) {
            return Err(Failure::not_found(format!(
                "template dir {} (--template-dir or BOXVIRT_TEMPLATE_DIR) is not a directory; create it with domain/, network/ or pool/ inside, or unset it",
                dir.display()
            )));
        }
        if let Some(path) = self.user_path(kind, name).filter(|p| p.exists()) {
            let xml = std::fs::read_to_string(&path).map_err(|e| {
                Failure::failed(format!("cannot read template {}: {e}", path.display()))
            })?;
            let template = Template {
                kind,
                name: name.to_string(),
                origin: Origin::User(path),
                xml,
            };
            render::check_well_formed(&template.label(), &template.xml)?;
            return Ok(template);
        }
        BUILTIN
            .iter()
            .find(|(k, n, _)| *k == kind && *n == name)
            .map(|(k, n, xml)| Template {
                kind: *k,
                name: n.to_string(),
                origin: Origin::Builtin,
                xml: xml.to_string(),
            })
            .ok_or_else(|| {
                let known: Vec<String> = self.names(kind).into_iter().collect();
                Failure::not_found(format!(
                    "no {} template named {name:?}; available: {} (see 'boxvirt template list')",
                    kind.dir(),
                    known.join(", ")
                ))
            })
    }

    /// Template names of one kind, built-in and user, sorted and unique.
    pub fn names(&self, kind: Kind) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, n, _)| n.to_string())
            .collect();
        if let Some(dir) = &self.user_dir {
            names.extend(xml_stems(&dir.join(kind.dir())));
        }
        names.sort();
        names.dedup();
        names
    }

    /// Every template, user files shadowing built-ins.
    pub fn list(&self) -> Result<Vec<Template>> {
        let mut all = Vec::new();
        for kind in Kind::ALL {
            for name in self.names(kind) {
                all.push(self.get(kind, &name)?);
            }
        }
        Ok(all)
    }

    /// Find a template by name across kinds; ambiguity needs `--kind`.
    pub fn find_any(&self, name: &str, kind: Option<Kind>) -> Result<Template> {
        if let Some(kind) = kind {
            return self.get(kind, name);
        }
        let kinds: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| self.names(*k).iter().any(|n| n == name))
            .collect();
        match kinds.as_slice() {
            [one] => self.get(*one, name),
            [] => Err(Failure::not_found(format!(
                "no template named {name:?}; see 'boxvirt template list'"
            ))),
            _ => Err(Failure::usage(format!(
                "template name {name:?} exists as {}; add --kind",
                kinds
                    .iter()
                    .map(|k| k.dir())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))),
        }
    }
}

fn xml_stems(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".xml").map(str::to_string)
        })
        .filter(|n| crate::names::validate("template", n).is_ok())
        .collect()
}

/// `KEY=VALUE` strings from `--set`.
pub fn parse_sets(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Failure::usage(format!("--set {s:?} is not KEY=VALUE"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_all_well_formed_and_listed() {
        let cat = Catalog::default();
        let all = cat.list().unwrap();
        assert_eq!(all.len(), BUILTIN.len());
        assert_eq!(
            cat.names(Kind::Domain),
            vec!["debian12", "rocky9", "tiny", "ubuntu24"]
        );
    }

    #[test]
    fn render_sets_values_and_rejects_missing_targets() {
        let cat = Catalog::default();
        let tiny = cat.get(Kind::Domain, "tiny").unwrap();
        let xml = tiny
            .render(&[
                ("name".into(), "t-1".into()),
                ("memory".into(), "300".into()),
            ])
            .unwrap();
        assert!(
            xml.contains("<name>t-1</name>") && xml.contains("<memory unit='MiB'>300</memory>")
        );
        let err = tiny
            .render(&[("disk".into(), "/x.qcow2".into())])
            .unwrap_err();
        assert!(
            err.message
                .contains("has no <domain/devices/disk/source> attribute file"),
            "{}",
            err.message
        );
    }

    #[test]
    fn user_dir_overrides_and_malformed_user_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("domain")).unwrap();
        std::fs::write(
            dir.path().join("domain/tiny.xml"),
            "<domain type='qemu'><name>mine</name></domain>",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("domain/broken.xml"),
            "<domain>\n<name>x</domain>",
        )
        .unwrap();
        let cat = Catalog::new(Some(dir.path().to_path_buf()));
        let t = cat.get(Kind::Domain, "tiny").unwrap();
        assert!(matches!(t.origin, Origin::User(_)) && t.xml.contains("mine"));
        let err = cat.get(Kind::Domain, "broken").unwrap_err();
        assert!(
            err.message.contains("broken.xml") && err.message.contains("line 2"),
            "{}",
            err.message
        );
        assert_eq!(
            cat.get(Kind::Domain, "nope").unwrap_err().exit,
            crate::error::Exit::NotFound
        );
    }

    #[test]
    fn find_any_resolves_across_kinds() {
        let cat = Catalog::default();
        assert_eq!(cat.find_any("rocky9", None).unwrap().kind, Kind::Domain);
        assert_eq!(
            cat.find_any("default", None).unwrap_err().exit,
            crate::error::Exit::Usage
        );
        assert_eq!(
            cat.find_any("default", Some(Kind::Pool)).unwrap().kind,
            Kind::Pool
        );
    }
}
