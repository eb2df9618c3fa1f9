//! SPEC files: a declarative statement of what to clean (examples in `plans/`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::changeset::policy::CachePolicy;
use crate::changeset::{PlanSpec, SectionStage};
use crate::plex::model::Section;

/// What to clean, per section, plus bundles, cache and the image host. Secrets never appear
/// here: hosts name the environment variables that hold them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Sections to clean; without it, every movie, show and music section at `stage`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<SectionSpec>,
    /// Stage for sections that do not state one (1–4, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u8>,
    /// Bundle cleanup step (1–3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundles: Option<u8>,
    /// PhotoTranscoder policy: `all`, `max-size=SIZE` or `older-than=AGE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    /// Where stage 4 uploads frame grabs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_host: Option<ImageHost>,
    /// What to ask of the Plex server itself (needs a Plex token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plex: Option<PlexSpec>,
    /// Keep what apply removes in the trash this long (e.g. `7d`), so `undo` can put it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<String>,
}

/// Calls to the Plex server: repairs planned with the changes, and Plex's own maintenance,
/// which `run` starts after an apply, always in Plex's recommended order (empty trash → clean
/// bundles → optimize) and waits for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlexSpec {
    /// Plan refresh/analyze calls for items whose images are missing or broken (`--repair`).
    #[serde(default)]
    pub repair: bool,
    /// Empty the trash of the cleaned sections.
    #[serde(default)]
    pub empty_trash: bool,
    /// Let Plex delete the bundles of items no longer in the library.
    #[serde(default)]
    pub clean_bundles: bool,
    /// Let Plex optimize its database.
    #[serde(default)]
    pub optimize: bool,
}

/// One section, by id or name, and its stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionSpec {
    /// `library_sections.id` or the section's name.
    pub section: SectionRef,
    /// Cleanup stage 1–4 (cumulative); default: the top-level `stage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u8>,
}

/// A section named by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SectionRef {
    /// Its id.
    Id(i64),
    /// Its name (exact, or the only case-insensitive match).
    Name(String),
}

/// An image host for stage 4, with credentials only as environment variable names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ImageHost {
    /// A Discord webhook; its URL is read from `webhook_env` at apply time.
    Discord {
        /// The variable holding the webhook URL.
        #[serde(default = "default_webhook_env")]
        webhook_env: String,
        /// Refresh links that expire within this long (or have expired) [default: 6h].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refresh_margin: Option<String>,
    },
    /// PUT to `<url>/<blake3>.<ext>`, served at `<public_url>/<blake3>.<ext>`.
    HttpPut {
        /// Where to PUT.
        url: String,
        /// Where Plex fetches from.
        public_url: String,
        /// The variable holding a bearer token, if the endpoint needs one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_env: Option<String>,
    },
    /// Copy into a folder that `tidyplex serve` publishes.
    Dir {
        /// The folder (outside the Plex data folder).
        path: String,
        /// Where Plex fetches from (`http://ADDR/i`).
        public_url: String,
    },
}

fn default_webhook_env() -> String {
    "TIDYPLEX_DISCORD_WEBHOOK".to_string()
}

/// How long before expiry a Discord link is refreshed when the SPEC does not say.
pub const DEFAULT_REFRESH_MARGIN: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// The image host kinds (`--image-host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostKind {
    /// A Discord webhook (URL in TIDYPLEX_DISCORD_WEBHOOK); links expire after about 24 h
    Discord,
    /// An HTTP PUT endpoint configured in the SPEC
    HttpPut,
    /// A local folder configured in the SPEC, published by `tidyplex serve`
    Dir,
}

impl HostKind {
    /// The name recorded in changesets.
    pub fn name(self) -> &'static str {
        match self {
            HostKind::Discord => "discord",
            HostKind::HttpPut => "http-put",
            HostKind::Dir => "dir",
        }
    }
}

impl ImageHost {
    /// The host's name as recorded in changesets.
    pub fn name(&self) -> &'static str {
        match self {
            ImageHost::Discord { .. } => "discord",
            ImageHost::HttpPut { .. } => "http-put",
            ImageHost::Dir { .. } => "dir",
        }
    }

    /// A Discord host with its defaults (the webhook URL in `TIDYPLEX_DISCORD_WEBHOOK`).
    pub fn discord_default() -> ImageHost {
        ImageHost::Discord { webhook_env: default_webhook_env(), refresh_margin: None }
    }

    /// How long before expiry links of this host are refreshed (`None`: they do not expire).
    pub fn refresh_margin(&self) -> Option<std::time::Duration> {
        match self {
            ImageHost::Discord { refresh_margin, .. } => Some(
                refresh_margin
                    .as_deref()
                    .and_then(|m| humantime::parse_duration(m).ok())
                    .unwrap_or(DEFAULT_REFRESH_MARGIN),
            ),
            _ => None,
        }
    }
}

/// Flags that override a SPEC.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--section ID`…: replaces the SPEC's sections.
    pub sections: Vec<i64>,
    /// `--stage N`: the stage of every section.
    pub stage: Option<u8>,
    /// `--bundles N`: the bundle cleanup step.
    pub bundles: Option<u8>,
    /// `--cache POLICY`: the PhotoTranscoder policy.
    pub cache: Option<CachePolicy>,
    /// `--repair`: plan Plex refresh/analyze calls.
    pub repair: bool,
    /// `--image-host KIND`: the stage-4 image host (its settings still come from the SPEC,
    /// except Discord's, whose defaults need nothing but the webhook variable).
    pub image_host: Option<HostKind>,
}

impl Spec {
    /// Reads and checks a SPEC file.
    pub fn load(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the SPEC {}", path.display()))?;
        let spec: Spec = yaml_serde::from_str(&text)
            .with_context(|| format!("{} is not a valid SPEC", path.display()))?;
        spec.check().with_context(|| format!("{} is not a valid SPEC", path.display()))?;
        Ok(spec)
    }

    /// `keep`, parsed.
    pub fn keep(&self) -> Result<Option<std::time::Duration>> {
        self.keep
            .as_deref()
            .map(|k| {
                humantime::parse_duration(k).map_err(|e| {
                    anyhow::anyhow!("keep `{k}` is not a duration (e.g. 7d or 12h): {e}")
                })
            })
            .transpose()
    }

    /// Checks stages, steps and that secrets are named, not written inline.
    pub fn check(&self) -> Result<()> {
        for stage in self.stage.iter().chain(self.sections.iter().filter_map(|s| s.stage.as_ref()))
        {
            check_stage(*stage)?;
        }
        if let Some(step) = self.bundles {
            check_step(step)?;
        }
        if let Some(cache) = &self.cache {
            cache.parse::<CachePolicy>().map_err(|e| anyhow::anyhow!("cache: {e}"))?;
        }
        self.keep()?;
        match &self.image_host {
            Some(ImageHost::Discord { webhook_env, refresh_margin }) => {
                check_env_name("webhook_env", webhook_env)?;
                if let Some(m) = refresh_margin {
                    humantime::parse_duration(m).map_err(|e| {
                        anyhow::anyhow!("image_host.refresh_margin `{m}` is not a duration: {e}")
                    })?;
                }
            }
            Some(ImageHost::HttpPut { url, public_url, token_env }) => {
                check_base_url("url", url)?;
                check_base_url("public_url", public_url)?;
                if let Some(t) = token_env {
                    check_env_name("token_env", t)?;
                }
            }
            Some(ImageHost::Dir { path, public_url }) => {
                if !Path::new(path).is_absolute() {
                    bail!("image_host.path must be an absolute folder, not `{path}`");
                }
                check_base_url("public_url", public_url)?;
            }
            None => {}
        }
        Ok(())
    }

    /// The image host to use: the SPEC's, or the kind `--image-host` names. A flag cannot carry
    /// a folder, an endpoint or a public URL, so `http-put` and `dir` must be configured in the
    /// SPEC; `discord` works with its defaults.
    pub fn host(&self, flags: &Overrides) -> Result<Option<ImageHost>> {
        let Some(kind) = flags.image_host else { return Ok(self.image_host.clone()) };
        match (&self.image_host, kind) {
            (Some(h), kind) if h.name() == kind.name() => Ok(Some(h.clone())),
            (_, HostKind::Discord) => Ok(Some(ImageHost::discord_default())),
            (_, kind) => bail!(
                "--image-host {} needs its settings in a SPEC (image_host: {{kind: {}, {}}}): a flag cannot carry them",
                kind.name(),
                kind.name(),
                if kind == HostKind::Dir { "path, public_url" } else { "url, public_url, token_env" }
            ),
        }
    }

    /// What to plan, with flags applied, against the DB's sections. Library stages are planned
    /// when a stage or sections are stated, or when neither bundles nor cache is asked for.
    pub fn resolve(&self, all: &[Section], flags: &Overrides) -> Result<PlanSpec> {
        if let Some(stage) = flags.stage {
            check_stage(stage)?;
        }
        if let Some(step) = flags.bundles {
            check_step(step)?;
        }
        let bundles = flags.bundles.or(self.bundles);
        let cache = match flags.cache {
            Some(policy) => Some(policy),
            None => match &self.cache {
                Some(text) => {
                    Some(text.parse::<CachePolicy>().map_err(|e| anyhow::anyhow!("cache: {e}"))?)
                }
                None => None,
            },
        };
        let library = flags.stage.is_some()
            || self.stage.is_some()
            || !self.sections.is_empty()
            || (bundles.is_none() && cache.is_none());
        let default_stage = flags.stage.or(self.stage).unwrap_or(1);
        let wanted: Vec<(SectionRef, u8)> = if !flags.sections.is_empty() {
            flags.sections.iter().map(|id| (SectionRef::Id(*id), default_stage)).collect()
        } else if !self.sections.is_empty() {
            self.sections
                .iter()
                .map(|s| (s.section.clone(), flags.stage.or(s.stage).unwrap_or(default_stage)))
                .collect()
        } else {
            all.iter()
                .filter(|s| s.is_cleanable())
                .map(|s| (SectionRef::Id(s.id), default_stage))
                .collect()
        };
        let mut sections = Vec::new();
        for (r, stage) in wanted {
            let section = find(all, &r)?;
            if !section.is_cleanable() {
                bail!(
                    "section {} \"{}\" is a {} section; library cleanup covers movie, show and music sections",
                    section.id,
                    section.name,
                    section.type_name()
                );
            }
            sections.retain(|s: &SectionStage| s.id != section.id);
            sections.push(SectionStage { id: section.id, name: section.name.clone(), stage });
        }
        sections.sort_by_key(|s| s.id);
        let named = !flags.sections.is_empty() || !self.sections.is_empty();
        let bundle_sections = match bundles {
            Some(_) if named => sections.iter().map(|s| s.id).collect(),
            _ => Vec::new(),
        };
        Ok(PlanSpec {
            sections: if library { sections } else { Vec::new() },
            bundles,
            bundle_sections,
            cache: cache.map(|c| c.to_string()),
            image_host: self.host(flags)?.map(|h| h.name().to_string()),
            repair: flags.repair || self.plex.as_ref().is_some_and(|p| p.repair),
        })
    }
}

fn check_step(step: u8) -> Result<()> {
    if !(1..=3).contains(&step) {
        bail!("bundles must be 1, 2 or 3, not {step}");
    }
    Ok(())
}

fn check_stage(stage: u8) -> Result<()> {
    if !(1..=4).contains(&stage) {
        bail!("stage must be 1, 2, 3 or 4, not {stage}");
    }
    Ok(())
}

/// A base URL of a host: http(s), no query or fragment (file names are appended to it).
fn check_base_url(field: &str, url: &str) -> Result<()> {
    if !crate::changeset::is_writable_url(url) || url.contains(['?', '#']) {
        bail!("image_host.{field} must be an http(s) URL without query or fragment");
    }
    Ok(())
}

/// An environment variable name, not a secret pasted in its place.
fn check_env_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !ok {
        bail!(
            "image_host.{field} must name an environment variable (like TIDYPLEX_DISCORD_WEBHOOK), \
             never hold the secret itself"
        );
    }
    Ok(())
}

/// The section `r` names.
fn find<'a>(all: &'a [Section], r: &SectionRef) -> Result<&'a Section> {
    let found = match r {
        SectionRef::Id(id) => all.iter().find(|s| s.id == *id),
        SectionRef::Name(name) => all.iter().find(|s| &s.name == name).or_else(|| {
            let mut folded = all.iter().filter(|s| s.name.to_lowercase() == name.to_lowercase());
            match (folded.next(), folded.next()) {
                (Some(s), None) => Some(s),
                _ => None,
            }
        }),
    };
    found.ok_or_else(|| {
        let known: Vec<String> = all.iter().map(|s| format!("{} \"{}\"", s.id, s.name)).collect();
        let what = match r {
            SectionRef::Id(id) => format!("section {id}"),
            SectionRef::Name(n) => format!("section \"{n}\""),
        };
        anyhow::anyhow!(
            "there is no {what} (sections: {}); `tidyplex sections` lists them",
            known.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections() -> Vec<Section> {
        let s = |id, name: &str, section_type| Section {
            id,
            name: name.into(),
            section_type,
            agent: String::new(),
            images: vec![],
        };
        vec![s(1, "Movies", 1), s(2, "영화", 1), s(3, "TV Shows", 2), s(4, "Photos", 13)]
    }

    #[test]
    fn sections_by_id_or_name_with_their_stages() {
        let spec: Spec = yaml_serde::from_str(
            "stage: 2\nsections:\n  - section: 영화\n    stage: 3\n  - section: tv shows\n  - section: 1\n",
        )
        .unwrap();
        spec.check().unwrap();
        let plan = spec.resolve(&sections(), &Overrides::default()).unwrap();
        let got: Vec<(i64, u8)> = plan.sections.iter().map(|s| (s.id, s.stage)).collect();
        assert_eq!(got, [(1, 2), (2, 3), (3, 2)]);
    }

    #[test]
    fn flags_override_the_spec() {
        let spec: Spec = yaml_serde::from_str("sections:\n  - section: 1\n    stage: 3\n").unwrap();
        let flags = Overrides { sections: vec![3], stage: Some(2), ..Default::default() };
        let plan = spec.resolve(&sections(), &flags).unwrap();
        assert_eq!(plan.sections, [SectionStage { id: 3, name: "TV Shows".into(), stage: 2 }]);
        let plan =
            spec.resolve(&sections(), &Overrides { stage: Some(1), ..Default::default() }).unwrap();
        assert_eq!(plan.sections[0].stage, 1);
    }

    #[test]
    fn the_image_host_flag_needs_settings_only_for_http_put_and_dir() {
        let flags = |kind| Overrides { image_host: Some(kind), ..Overrides::default() };
        let none = Spec::default();
        assert_eq!(
            none.host(&flags(HostKind::Discord)).unwrap(),
            Some(ImageHost::discord_default())
        );
        assert!(none.host(&flags(HostKind::Dir)).unwrap_err().to_string().contains("SPEC"));
        let dir: Spec = yaml_serde::from_str(
            "image_host:\n  kind: dir\n  path: /srv/i\n  public_url: http://h:1/i\n",
        )
        .unwrap();
        assert_eq!(dir.host(&flags(HostKind::Dir)).unwrap(), dir.image_host);
        assert_eq!(dir.host(&Overrides::default()).unwrap(), dir.image_host);
        assert_eq!(
            dir.host(&flags(HostKind::Discord)).unwrap(),
            Some(ImageHost::discord_default())
        );
        assert!(dir.host(&flags(HostKind::HttpPut)).is_err());
        assert_eq!(dir.image_host.unwrap().refresh_margin(), None);
        assert_eq!(ImageHost::discord_default().refresh_margin(), Some(DEFAULT_REFRESH_MARGIN));
    }

    #[test]
    fn without_sections_every_cleanable_one() {
        let plan = Spec::default().resolve(&sections(), &Overrides::default()).unwrap();
        let ids: Vec<i64> = plan.sections.iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert!(plan.sections.iter().all(|s| s.stage == 1));
    }

    #[test]
    fn bad_specs_are_refused_with_a_reason() {
        let err = |yaml: &str| {
            let spec: Result<Spec, _> = yaml_serde::from_str(yaml);
            match spec {
                Err(e) => e.to_string(),
                Ok(spec) => match spec.check() {
                    Err(e) => e.to_string(),
                    Ok(()) => {
                        spec.resolve(&sections(), &Overrides::default()).unwrap_err().to_string()
                    }
                },
            }
        };
        assert!(err("stage: 5").contains("stage must be"));
        assert!(err("bundles: 4").contains("bundles must be"));
        assert!(err("sections:\n  - section: Nope\n").contains("no section \"Nope\""));
        assert!(err("sections:\n  - section: 4\n").contains("photo section"));
        assert!(err("stages: 2").contains("unknown field"));
        assert!(err(
            "image_host:\n  kind: discord\n  webhook_env: https://discord.com/api/webhooks/1/x\n"
        )
        .contains("never hold the secret"));
        assert!(err(
            "image_host:\n  kind: discord\n  webhook: https://discord.com/api/webhooks/1/x\n"
        )
        .contains("unknown field"));
        assert!(err("image_host:\n  kind: discord\n  refresh_margin: soon\n")
            .contains("not a duration"));
        assert!(err("image_host:\n  kind: dir\n  path: images\n  public_url: http://h/i\n")
            .contains("absolute"));
        assert!(err("image_host:\n  kind: http-put\n  url: ftp://h\n  public_url: http://h/i\n")
            .contains("http(s) URL"));
    }
}
