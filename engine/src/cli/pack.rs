//! `squall pack list | new | validate`.

use super::output::{structured, table};
use super::{Cli, ExitCode, PackCmd};
use serde_json::json;
use squall_core::content;
use std::path::Path;

/// Run a pack command.
pub fn run(cli: &Cli, cmd: &PackCmd) -> ExitCode {
    match cmd {
        PackCmd::List => list(cli),
        PackCmd::New { name } => new(cli, name),
        PackCmd::Validate { name } => validate(cli, name.as_deref()),
    }
}

fn list(cli: &Cli) -> ExitCode {
    let c = match content::load(&cli.root, &squall_server::components()) {
        Ok(c) => c,
        Err(d) => {
            eprintln!("{d}");
            return 1;
        }
    };
    let list: Vec<serde_json::Value> = c
        .packs
        .values()
        .map(|p| squall_server::views::pack_summary(&c, p))
        .collect();
    if structured(cli.output, &list).is_none() {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|p| {
                vec![
                    p["name"].as_str().unwrap_or("").into(),
                    p["version"].as_str().unwrap_or("").into(),
                    p["actions"].to_string(),
                    p["rules"].to_string(),
                    p["sensors"].to_string(),
                    p["description"].as_str().unwrap_or("").into(),
                ]
            })
            .collect();
        table(
            &[
                "NAME",
                "VERSION",
                "ACTIONS",
                "RULES",
                "SENSORS",
                "DESCRIPTION",
            ],
            &rows,
        );
    }
    0
}

fn validate(cli: &Cli, name: Option<&str>) -> ExitCode {
    if let Some(n) = name {
        if !cli.root.join("packs").join(n).is_dir() {
            eprintln!(
                "error: no pack folder packs/{n} under {}",
                cli.root.display()
            );
            return 2;
        }
    }
    let problems = match content::load(&cli.root, &squall_server::components()) {
        Ok(_) => Vec::new(),
        Err(d) => {
            d.0.into_iter()
                .filter(|p| match name {
                    Some(n) => {
                        p.file.starts_with(Path::new("packs").join(n))
                            || p.file
                                .starts_with(Path::new("config").join(format!("{n}.yaml")))
                    }
                    None => true,
                })
                .collect()
        }
    };
    let doc = json!({"pack": name, "valid": problems.is_empty(),
        "problems": problems.iter().map(|p| p.to_string()).collect::<Vec<_>>()});
    if structured(cli.output, &doc).is_none() {
        for p in &problems {
            println!("{p}");
        }
        match (problems.is_empty(), name) {
            (true, Some(n)) => println!("pack {n} is valid"),
            (true, None) => println!("all packs are valid"),
            (false, _) => println!("{} problem(s) found", problems.len()),
        }
    }
    i32::from(!problems.is_empty())
}

fn new(cli: &Cli, name: &str) -> ExitCode {
    if !squall_core::model::valid_name(name) {
        eprintln!("error: pack name {name:?} must match [a-z0-9_-]+ (lower-case letters, digits, _ and -)");
        return 2;
    }
    let dir = cli.root.join("packs").join(name);
    if dir.exists() {
        eprintln!(
            "error: {} already exists; pick another name or remove it",
            dir.display()
        );
        return 1;
    }
    match scaffold(&dir, name) {
        Ok(()) => {
            println!("created pack {name} in {}", dir.display());
            println!("try: squall run {name}.hello who=world");
            0
        }
        Err(e) => {
            eprintln!("error: cannot create {}: {e}", dir.display());
            1
        }
    }
}

/// Write a small pack that validates and runs: one shell action, one workflow, one
/// (disabled) rule.
fn scaffold(dir: &Path, name: &str) -> std::io::Result<()> {
    for sub in ["actions", "workflows", "rules", "sensors"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::write(
        dir.join("pack.yaml"),
        format!("name: {name}\nversion: 0.1.0\ndescription: What the {name} pack integrates\nauthor: you\n"),
    )?;
    std::fs::write(
        dir.join("actions/hello.yaml"),
        "name: hello\ndescription: Greet someone from a shell script\nrunner: shell\nentry_point: hello.sh\nparameters:\n  who: {type: string, default: world, description: Whom to greet}\ntimeout: 30\n",
    )?;
    let script = dir.join("actions/hello.sh");
    std::fs::write(&script, "#!/bin/sh\n# Parameters arrive as SQUALL_PARAM_<NAME> and as JSON on stdin.\necho \"hello, ${SQUALL_PARAM_WHO}\"\n")?;
    set_executable(&script)?;
    std::fs::write(
        dir.join("workflows/greet_twice.yaml"),
        format!(
            "name: greet_twice\ndescription: Greet, then greet the published name again\nparameters:\n  who: {{type: string, default: world}}\nchain:\n  - name: first\n    ref: {name}.hello\n    parameters: {{who: \"{{{{ who }}}}\"}}\n    publish: {{greeting: \"{{{{ result.stdout }}}}\"}}\n    on-success: second\n  - name: second\n    ref: {name}.hello\n    parameters: {{who: \"again, {{{{ who }}}}\"}}\n"
        ),
    )?;
    std::fs::write(
        dir.join("rules/on_webhook.yaml"),
        format!(
            "name: on_webhook\ndescription: Greet whoever posts to the {name} webhook\nenabled: false\ntrigger: core.webhook\ncriteria:\n  trigger.path: {{type: equals, pattern: {name}}}\naction:\n  ref: {name}.hello\n  parameters:\n    who: \"{{{{ trigger.body.who }}}}\"\n"
        ),
    )?;
    std::fs::write(dir.join("README.md"), format!("# {name}\n\nDescribe the pack here: what it integrates, its configuration and its actions.\n"))?;
    Ok(())
}

fn set_executable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(p)?.permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(p, perm)
}
