//! The loader: reads `squall.yaml`, every pack, the site's folders and pack
//! configuration, compiles workflows and rules, and collects every problem as a
//! [`Diagnostic`] with its position.

use super::*;
use crate::model::{ActionMeta, RuleSpec, SensorSpec, WorkflowSpec};

/// Load and validate the content under `root`, checking actions' runners and sensors'
/// types and configuration against `catalog` (the build's [`crate::Components`]).
pub fn load(root: &Path, catalog: &dyn Catalog) -> Result<Content, Diagnostics> {
    let mut l = Loader {
        catalog,
        root: root.to_path_buf(),
        diags: Vec::new(),
        settings: Settings::default(),
        packs: BTreeMap::new(),
        actions: BTreeMap::new(),
        rules: BTreeMap::new(),
        sensors: BTreeMap::new(),
        pending_rules: Vec::new(),
        pending_workflows: Vec::new(),
        broken_workflows: Vec::new(),
        sources: BTreeMap::new(),
        written: Written::default(),
        config_secrets: Vec::new(),
    };
    l.settings();
    l.packs();
    l.site();
    l.configs();
    l.compile_workflows();
    validate::cross_check(&mut l);
    l.compile_rules();
    if !l.diags.is_empty() {
        l.diags.sort();
        l.diags.dedup();
        return Err(Diagnostics(l.diags));
    }
    let rules: BTreeMap<String, Arc<Rule>> = l.rules;
    let pinned = l.written.values().cloned().chain(l.config_secrets);
    let secrets = crate::secrets::Pins::new(pinned);
    Ok(Content {
        root: l.root,
        settings: l.settings,
        packs: l.packs,
        actions: l.actions,
        rule_index: RuleIndex::new(rules.values()),
        rules,
        sensors: l.sensors,
        written: l.written,
        secrets,
    })
}

/// Loading state, shared with `validate`.
pub(crate) struct Loader<'a> {
    pub(crate) root: PathBuf,
    pub(crate) diags: Vec<Diagnostic>,
    pub(crate) settings: Settings,
    pub(crate) packs: BTreeMap<String, Pack>,
    pub(crate) actions: BTreeMap<String, Arc<Action>>,
    pub(crate) rules: BTreeMap<String, Arc<Rule>>,
    pub(crate) sensors: BTreeMap<String, Arc<Sensor>>,
    pending_rules: Vec<(SourceFile, RuleSpec, String)>,
    pending_workflows: Vec<(SourceFile, WorkflowSpec, String)>,
    /// Workflows that did not compile: their task references are still checked.
    pub(crate) broken_workflows: Vec<(SourceFile, WorkflowSpec)>,
    /// Source of every action (workflows included), for positions in cross-checks.
    pub(crate) sources: BTreeMap<String, SourceFile>,
    /// The references of every file read.
    written: Written,
    /// Secret values of pack configuration.
    config_secrets: Vec<String>,
    /// The runners and sensor types of the build, to check content against.
    pub(crate) catalog: &'a dyn Catalog,
}

/// What the loader needs to know of every object file: its name and declared pack.
trait PackObject {
    fn name(&self) -> &str;
    fn pack(&self) -> Option<&String>;
}

macro_rules! pack_object {
    ($($t:ty),*) => {$(
        impl PackObject for $t {
            fn name(&self) -> &str {
                &self.name
            }
            fn pack(&self) -> Option<&String> {
                self.pack.as_ref()
            }
        }
    )*};
}

pack_object!(ActionMeta, WorkflowSpec, RuleSpec, SensorSpec);

/// `*.yaml` / `*.yml` files of `dir`, sorted; nothing when the folder does not exist.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

impl Loader<'_> {
    /// Path as shown in diagnostics: relative to the root when under it.
    fn shown(&self, p: &Path) -> PathBuf {
        p.strip_prefix(&self.root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| p.to_path_buf())
    }

    fn read(&mut self, path: &Path) -> Option<SourceFile> {
        let shown = self.shown(path);
        let mut diags = Vec::new();
        let res = super::guard::read_text(path, &shown)
            .and_then(|text| SourceFile::parse(&shown, &text, &mut diags));
        self.diags.extend(diags);
        match res {
            Ok(sf) => {
                self.written.add(&sf.path, &sf.refs);
                Some(sf)
            }
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    fn typed<T: serde::de::DeserializeOwned>(&mut self, sf: &SourceFile) -> Option<T> {
        match sf.typed() {
            Ok(v) => Some(v),
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    fn settings(&mut self) {
        let path = self.root.join("squall.yaml");
        if !path.exists() {
            return;
        }
        if let Some(sf) = self.read(&path) {
            if let Some(s) = self.typed::<Settings>(&sf) {
                self.settings = s;
            }
        }
    }

    fn packs(&mut self) {
        let dir = self.root.join("packs");
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect(),
            Err(_) => Vec::new(),
        };
        entries.sort();
        for pack_dir in entries {
            self.pack(&pack_dir);
        }
    }

    fn pack(&mut self, pack_dir: &Path) {
        let meta_path = pack_dir.join("pack.yaml");
        let folder = pack_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if !meta_path.exists() {
            let shown = self.shown(pack_dir);
            self.diags.push(Diagnostic::at(
                &shown,
                Pos { line: 1, col: 1 },
                "pack folder has no pack.yaml; add one with at least `name:` (try `squall pack new NAME`)",
            ));
            return;
        }
        let Some(sf) = self.read(&meta_path) else {
            return;
        };
        let Some(meta) = self.typed::<PackMeta>(&sf) else {
            return;
        };
        if !crate::model::valid_name(&meta.name) {
            self.diags.push(sf.diag(
                "name",
                format!("pack name {:?} must match [a-z0-9_-]+", meta.name),
            ));
        } else if meta.name != folder {
            self.diags.push(sf.diag(
                "name",
                format!(
                    "pack `{}` lives in folder `{folder}`; rename one so they match",
                    meta.name
                ),
            ));
        }
        for (field, msg) in crate::params::check_schema(&meta.config_schema) {
            self.diags
                .push(sf.diag(&format!("config_schema.{field}"), msg));
        }
        if let Some(prev) = self.packs.get(&meta.name) {
            self.diags.push(sf.diag(
                "name",
                format!(
                    "pack `{}` is defined twice (also in {:?})",
                    meta.name, prev.dir
                ),
            ));
            return;
        }
        let name = meta.name.clone();
        self.packs.insert(
            name.clone(),
            Pack {
                meta,
                dir: Some(pack_dir.to_path_buf()),
                config: serde_json::json!({}),
            },
        );
        for f in yaml_files(&pack_dir.join("actions")) {
            self.action_file(&f, &name);
        }
        self.content_dirs(pack_dir, Some(&name));
    }

    /// `workflows/`, `rules/` and `sensors/` under `base` (a pack, or the root).
    fn content_dirs(&mut self, base: &Path, pack: Option<&str>) {
        for f in yaml_files(&base.join("workflows")) {
            self.workflow_file(&f, pack);
        }
        for f in yaml_files(&base.join("rules")) {
            self.rule_file(&f, pack);
        }
        for f in yaml_files(&base.join("sensors")) {
            self.sensor_file(&f, pack);
        }
    }

    fn site(&mut self) {
        let root = self.root.clone();
        self.content_dirs(&root, None);
    }

    /// The pack of an object: the enclosing pack, or the file's `pack:` (default `site`).
    fn owner(
        &mut self,
        sf: &SourceFile,
        folder_pack: Option<&str>,
        declared: Option<&String>,
    ) -> Option<String> {
        match (folder_pack, declared) {
            (Some(fp), Some(d)) if d != fp => {
                self.diags.push(sf.diag(
                    "pack",
                    format!("`pack: {d}` in a file of pack `{fp}`; remove it or make it `{fp}`"),
                ));
                None
            }
            (Some(fp), _) => Some(fp.to_string()),
            (None, Some(d)) if !crate::model::valid_name(d) => {
                self.diags
                    .push(sf.diag("pack", format!("pack name {d:?} must match [a-z0-9_-]+")));
                None
            }
            (None, Some(d)) => Some(d.clone()),
            (None, None) => Some(SITE_PACK.to_string()),
        }
    }

    fn check_name(&mut self, sf: &SourceFile, name: &str) -> bool {
        if crate::model::valid_name(name) {
            return true;
        }
        self.diags.push(sf.diag(
            "name",
            format!("name {name:?} must match [a-z0-9_-]+ (lower-case letters, digits, _ and -)"),
        ));
        false
    }

    fn ensure_site_pack(&mut self, pack: &str) {
        if !self.packs.contains_key(pack) {
            self.packs.insert(
                pack.to_string(),
                Pack {
                    meta: PackMeta {
                        name: pack.to_string(),
                        version: None,
                        description: Some("the site's own content".into()),
                        author: None,
                        email: None,
                        dependencies: Vec::new(),
                        config_schema: Default::default(),
                    },
                    dir: None,
                    config: serde_json::json!({}),
                },
            );
        }
    }

    fn add_action(&mut self, sf: &SourceFile, action: Action) {
        if let Some(prev) = self.actions.get(&action.reference) {
            let msg = format!(
                "action `{}` is defined twice (first in {}); rename one",
                action.reference,
                prev.file.display()
            );
            self.diags.push(sf.diag("name", msg));
            return;
        }
        self.sources.insert(action.reference.clone(), sf.clone());
        self.actions
            .insert(action.reference.clone(), Arc::new(action));
    }

    /// Read one object file: parse, type, find its pack (the enclosing pack, or the
    /// file's `pack:`, default `site`) and check its name. Problems become diagnostics.
    fn object<T: serde::de::DeserializeOwned + PackObject>(
        &mut self,
        path: &Path,
        folder_pack: Option<&str>,
    ) -> Option<(SourceFile, T, String)> {
        let sf = self.read(path)?;
        let obj = self.typed::<T>(&sf)?;
        let pack = self.owner(&sf, folder_pack, obj.pack())?;
        if !self.check_name(&sf, obj.name()) {
            return None;
        }
        self.ensure_site_pack(&pack);
        Some((sf, obj, pack))
    }

    fn action_file(&mut self, path: &Path, pack: &str) {
        let Some((sf, meta, pack)) = self.object::<ActionMeta>(path, Some(pack)) else {
            return;
        };
        for (field, msg) in crate::params::check_schema(&meta.parameters) {
            self.diags
                .push(sf.diag(&format!("parameters.{field}"), msg));
        }
        let action = Action {
            reference: format!("{pack}.{}", meta.name),
            pack,
            meta,
            file: sf.path.clone(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            workflow: None,
        };
        self.add_action(&sf, action);
    }

    fn workflow_file(&mut self, path: &Path, pack: Option<&str>) {
        let Some((sf, spec, pack)) = self.object::<WorkflowSpec>(path, pack) else {
            return;
        };
        for (field, msg) in crate::params::check_schema(&spec.parameters) {
            self.diags
                .push(sf.diag(&format!("parameters.{field}"), msg));
        }
        self.pending_workflows.push((sf, spec, pack));
    }

    fn rule_file(&mut self, path: &Path, pack: Option<&str>) {
        let Some((sf, spec, pack)) = self.object::<RuleSpec>(path, pack) else {
            return;
        };
        self.pending_rules.push((sf, spec, pack));
    }

    fn sensor_file(&mut self, path: &Path, pack: Option<&str>) {
        let Some((sf, spec, pack)) = self.object::<SensorSpec>(path, pack) else {
            return;
        };
        let reference = format!("{pack}.{}", spec.name);
        if let Some(prev) = self.sensors.get(&reference) {
            let msg = format!(
                "sensor `{reference}` is defined twice (first in {})",
                prev.file.display()
            );
            self.diags.push(sf.diag("name", msg));
            return;
        }
        for (field, msg) in self.catalog.check_sensor(&spec) {
            self.diags.push(sf.diag(&field, msg));
        }
        let trigger = self.catalog.sensor_trigger(&spec).unwrap_or_default();
        self.sensors.insert(
            reference.clone(),
            Arc::new(Sensor {
                reference,
                pack,
                spec,
                trigger,
                file: sf.path.clone(),
            }),
        );
    }

    /// `config/<pack>.yaml`, checked against each pack's `config_schema`.
    fn configs(&mut self) {
        let names: Vec<String> = self.packs.keys().cloned().collect();
        for f in yaml_files(&self.root.join("config")) {
            let stem = f
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            if !names.contains(&stem) {
                let shown = self.shown(&f);
                self.diags.push(Diagnostic::at(
                    &shown,
                    Pos { line: 1, col: 1 },
                    unknown("pack", &stem, names.iter())
                        + " (config files are named after their pack)",
                ));
            }
        }
        for name in names {
            let path = self.root.join("config").join(format!("{name}.yaml"));
            let given = if path.exists() {
                match self.read(&path) {
                    Some(sf) => Some((sf.json.clone(), sf)),
                    None => continue,
                }
            } else {
                None
            };
            let pack = &self.packs[&name];
            let schema = pack.meta.config_schema.clone();
            let value = given.as_ref().map(|(j, _)| j.clone()).unwrap_or(Json::Null);
            if schema.is_empty() && given.is_none() {
                continue;
            }
            match crate::params::validate(&schema, &value) {
                Ok(cfg) => {
                    // `secret: true` keys were registered by `validate`; keep them
                    // known while this content is loaded.
                    self.config_secrets.extend(crate::secrets::found_in(&cfg));
                    if let Some(p) = self.packs.get_mut(&name) {
                        p.config = cfg;
                    }
                }
                Err(e) => {
                    let msg = format!("config of pack `{name}`: {e}");
                    match &given {
                        Some((_, sf)) => self.diags.push(sf.diag(&e.name, msg)),
                        None => {
                            let shown = self.shown(&path);
                            self.diags.push(Diagnostic::at(
                                &shown,
                                Pos { line: 1, col: 1 },
                                format!(
                                    "{msg}; create this file with the pack's required settings"
                                ),
                            ))
                        }
                    }
                }
            }
        }
    }

    fn compile_workflows(&mut self) {
        let max = self.settings.max_task_runs.unwrap_or(DEFAULT_MAX_TASK_RUNS);
        for (sf, spec, pack) in std::mem::take(&mut self.pending_workflows) {
            let reference = format!("{pack}.{}", spec.name);
            let meta = ActionMeta {
                name: spec.name.clone(),
                pack: Some(pack.clone()),
                description: spec.description.clone(),
                runner: super::ACTION_CHAIN.to_string(),
                enabled: true,
                entry_point: None,
                parameters: spec.parameters.clone(),
                timeout: spec.timeout,
                idempotent: spec.idempotent,
                concurrency: None,
                tags: Vec::new(),
                settings: Default::default(),
            };
            let copy = spec.clone();
            match Workflow::compile(spec, reference.clone(), max) {
                Ok(wf) => {
                    let action = Action {
                        reference,
                        pack,
                        meta,
                        file: sf.path.clone(),
                        dir: self.root.join(sf.path.parent().unwrap_or(Path::new(""))),
                        workflow: Some(Arc::new(wf)),
                    };
                    self.add_action(&sf, action);
                }
                Err(errors) => {
                    for (field, msg) in errors {
                        self.diags.push(sf.diag(&field, msg));
                    }
                    self.broken_workflows.push((sf, copy));
                }
            }
        }
    }

    fn compile_rules(&mut self) {
        for (sf, spec, pack) in std::mem::take(&mut self.pending_rules) {
            let reference = format!("{pack}.{}", spec.name);
            if let Some(prev) = self.rules.get(&reference) {
                let msg = format!(
                    "rule `{reference}` is defined twice (first in {})",
                    prev.file.display()
                );
                self.diags.push(sf.diag("name", msg));
                continue;
            }
            let target = spec.action.action.clone();
            match Rule::compile(spec, &pack, sf.path.clone()) {
                Ok(rule) => {
                    validate::rule_action(&mut self.diags, &sf, &rule, &self.actions);
                    self.rules.insert(reference, Arc::new(rule));
                }
                Err(errors) => {
                    for (field, msg) in errors {
                        self.diags.push(sf.diag(&field, msg));
                    }
                    // The rule's other problems do not hide an unknown action.
                    if !self.actions.contains_key(&target) {
                        self.diags.push(sf.diag(
                            "action.ref",
                            unknown("action", &target, self.actions.keys()),
                        ));
                    }
                }
            }
        }
    }
}
