//! The Squall server: [`service`] ties the engine, the sensors and content reloads
//! together behind `squall serve`; [`api`] is its HTTP API; [`views`] shapes records for
//! the API and the CLI.

pub mod api;
pub mod service;
pub mod views;

use squall_core::Components;

/// Every runner and sensor type of this build: the engine's built-in ones and the
/// integrations.
pub fn components() -> Components {
    let mut c = squall_runtime::builtin();
    squall_integrations::add_to(&mut c);
    c
}

/// The reference documentation of this build's runners and sensor types, generated from
/// their typed settings: `(path under docs/, Markdown)`. A test keeps `docs/reference/`
/// equal to it; run it with `SQUALL_BLESS=1` to rewrite the files after a change.
pub fn reference_docs() -> Vec<(&'static str, String)> {
    use squall_core::config::reference;
    let c = components();
    let runners: Vec<(&str, squall_core::config::Reference)> =
        c.runners.iter().map(|(n, r)| (n, r.reference())).collect();
    let sensors: Vec<(&str, squall_core::config::Reference)> =
        c.sensors.iter().map(|(n, s)| (n, s.reference())).collect();
    vec![
        (
            "reference/runners.md",
            reference(
                "Runners",
                "Generated from each runner's typed settings (`squall-server`'s \
                 `reference_docs`); do not edit by hand. An action file takes the common keys \
                 (docs/content.md) and the settings of its runner below; a runner's \
                 parameters are what it reads from an execution, declared in the pack's action \
                 files. `action-chain` (workflows) is described in docs/workflows.md.",
                &runners,
            ),
        ),
        (
            "reference/sensors.md",
            reference(
                "Sensor types",
                "Generated from each sensor type's typed `config:` (`squall-server`'s \
                 `reference_docs`); do not edit by hand. A sensor file is described in \
                 docs/sensors.md.",
                &sensors,
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    /// `docs/reference/` is what the code says; `SQUALL_BLESS=1` rewrites it.
    #[test]
    fn the_reference_docs_are_current() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let bless = std::env::var_os("SQUALL_BLESS").is_some();
        for (path, text) in super::reference_docs() {
            let file = docs.join(path);
            if bless {
                std::fs::create_dir_all(file.parent().expect("a folder")).expect("mkdir");
                std::fs::write(&file, &text).expect("write");
                continue;
            }
            let current = std::fs::read_to_string(&file).unwrap_or_default();
            assert!(
                current == text,
                "docs/{path} is stale: run `SQUALL_BLESS=1 cargo test -p squall-server \
                 the_reference_docs_are_current` and commit the result"
            );
        }
    }

    /// An unknown key of an action file names the common keys and the runner's own; an
    /// unknown key inside a runner's block names that block's keys.
    #[test]
    fn unknown_action_keys_list_what_is_allowed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let actions = dir.path().join("packs/ops/actions");
        std::fs::create_dir_all(&actions).expect("mkdir");
        std::fs::write(
            dir.path().join("packs/ops/pack.yaml"),
            "name: ops\nversion: 1.0.0\n",
        )
        .expect("write");
        let files = [
            (
                "a.yaml",
                "name: a\nrunner: shell\ncmd: \"true\"\ntimout: 5\n",
            ),
            ("b.yaml", "name: b\nrunner: noop\ndescripton: x\n"),
            (
                "c.yaml",
                "name: c\nrunner: http\nhttp:\n  url: http://x/\n  methd: GET\n",
            ),
        ];
        for (name, text) in files {
            std::fs::write(actions.join(name), text).expect("write");
        }
        let problems = squall_core::content::load(dir.path(), &super::components())
            .expect_err("unknown keys")
            .to_string();
        for expected in [
            "a.yaml:4:9: unknown field `timout`, expected one of `name`, `pack`",
            "`tags` or the `shell` runner's `cmd`, `cwd`, `env`",
            "b.yaml:3:13: unknown field `descripton`",
            "(the `noop` runner takes no settings)",
            "c.yaml:5:10: unknown field `methd`, expected one of `method`, `url`",
        ] {
            assert!(problems.contains(expected), "{expected}\n{problems}");
        }
    }
}
