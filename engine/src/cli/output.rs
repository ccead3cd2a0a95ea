//! Printing: `-o table|json|yaml`.

use clap::ValueEnum;
use serde::Serialize;
use squall_core::model::{Execution, Json};

/// Output format of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    Table,
    /// One JSON document.
    Json,
    /// One YAML document.
    Yaml,
}

/// Print `value` as JSON or YAML; `None` when the format is `table` (the caller prints).
pub fn structured<T: Serialize>(format: Format, value: &T) -> Option<()> {
    match format {
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
            Some(())
        }
        Format::Yaml => {
            print!("{}", serde_yaml::to_string(value).unwrap_or_default());
            Some(())
        }
        Format::Table => None,
    }
}

/// Print rows as aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// A JSON value as indented YAML lines (for table output).
pub fn yaml_block(v: &Json, indent: usize) -> String {
    let text = serde_yaml::to_string(v).unwrap_or_default();
    let pad = " ".repeat(indent);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

pub use squall_core::model::seconds_between as duration;

/// Print an execution record in the chosen format.
pub fn execution(format: Format, e: &Execution) {
    if structured(format, e).is_some() {
        return;
    }
    println!("id:         {}", e.id);
    println!("action:     {}", e.action);
    println!("status:     {}", e.status);
    if let Some(p) = &e.parent {
        println!(
            "parent:     {p} (task {})",
            e.task.as_deref().unwrap_or("?")
        );
    }
    if let Some(r) = &e.rule {
        println!("rule:       {r}");
    }
    println!("created:    {}", e.created_at);
    if let Some(f) = &e.finished_at {
        let took = duration(e.started_at.as_deref(), Some(f))
            .map(|d| format!(" ({d:.3}s)"))
            .unwrap_or_default();
        println!("finished:   {f}{took}");
    }
    if e.parameters.as_object().is_some_and(|m| !m.is_empty()) {
        print!("parameters:\n{}", yaml_block(&e.parameters, 2));
    }
    if let Some(err) = &e.error {
        println!("error:      {err}");
    }
    if let Some(r) = &e.result {
        print!("result:\n{}", yaml_block(r, 2));
    }
    if !e.children.is_empty() {
        println!("children:");
        let rows: Vec<Vec<String>> = e
            .children
            .iter()
            .map(|c| {
                let item = c.item.as_ref().map(|i| i.to_string()).unwrap_or_default();
                vec![
                    format!("  {}", c.task),
                    c.action.clone(),
                    c.status.to_string(),
                    item,
                    c.id.clone(),
                ]
            })
            .collect();
        table(&["  TASK", "ACTION", "STATUS", "ITEM", "ID"], &rows);
    }
}

/// Print a list of executions.
pub fn executions(format: Format, list: &[Execution]) {
    if structured(format, &list).is_some() {
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            let took = duration(e.started_at.as_deref(), e.finished_at.as_deref())
                .map(|d| format!("{d:.3}s"))
                .unwrap_or_default();
            vec![
                e.id.clone(),
                e.action.clone(),
                e.status.to_string(),
                e.created_at.clone(),
                took,
            ]
        })
        .collect();
    table(&["ID", "ACTION", "STATUS", "CREATED", "TOOK"], &rows);
}

/// A JSON value as a table cell: strings bare, null empty, anything else as JSON.
pub fn cell(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        v => v.to_string(),
    }
}

/// The cells of `keys` in each object of `list` (a JSON array; anything else is no rows).
fn rows(list: &Json, keys: &[&str]) -> Vec<Vec<String>> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|o| keys.iter().map(|k| cell(&o[*k])).collect())
                .collect()
        })
        .unwrap_or_default()
}

/// A document from the server that does not decode as what this CLI expects.
#[derive(Debug, thiserror::Error)]
#[error("the server sent {what} this CLI cannot read: {source}")]
pub struct Unreadable {
    /// What was expected.
    pub what: &'static str,
    #[source]
    pub source: serde_json::Error,
}

/// An execution record given as JSON (the API's document): printed as is in `json`/`yaml`,
/// as the usual table otherwise.
pub fn execution_json(format: Format, doc: &Json) -> Result<(), Unreadable> {
    if structured(format, doc).is_some() {
        return Ok(());
    }
    let e: Execution = serde_json::from_value(doc.clone()).map_err(|source| Unreadable {
        what: "an execution record",
        source,
    })?;
    execution(format, &e);
    Ok(())
}

/// A list of execution records given as JSON, like [`execution_json`].
pub fn executions_json(format: Format, doc: &Json) -> Result<(), Unreadable> {
    if structured(format, doc).is_some() {
        return Ok(());
    }
    let list: Vec<Execution> =
        serde_json::from_value(doc.clone()).map_err(|source| Unreadable {
            what: "execution records",
            source,
        })?;
    executions(format, &list);
    Ok(())
}

/// `action list`: documents from [`squall_server::views::action_summary`].
pub fn actions(format: Format, list: &Json) {
    if structured(format, list).is_none() {
        let rows = rows(list, &["ref", "runner", "description"]);
        table(&["REF", "RUNNER", "DESCRIPTION"], &rows);
    }
}

/// `action get`: the document from [`squall_server::views::action_doc`].
pub fn action(format: Format, doc: &Json) {
    if structured(format, doc).is_some() {
        return;
    }
    let meta = &doc["metadata"];
    println!("ref:         {}", cell(&doc["ref"]));
    println!("runner:      {}", cell(&meta["runner"]));
    println!("file:        {}", cell(&doc["file"]));
    if !meta["description"].is_null() {
        println!("description: {}", cell(&meta["description"]));
    }
    let Some(params) = meta["parameters"].as_object() else {
        return;
    };
    let rows: Vec<Vec<String>> = params
        .iter()
        .map(|(name, s)| {
            let flags: Vec<&str> = ["required", "secret"]
                .into_iter()
                .filter(|f| s[*f].as_bool() == Some(true))
                .collect();
            let kind = match &s["type"] {
                Json::Null => "any".to_string(),
                t => cell(t),
            };
            let default = match &s["default"] {
                Json::Null => String::new(),
                d => d.to_string(),
            };
            vec![
                name.clone(),
                kind,
                default,
                flags.join(","),
                cell(&s["description"]),
            ]
        })
        .collect();
    if !rows.is_empty() {
        println!("parameters:");
        table(&["NAME", "TYPE", "DEFAULT", "FLAGS", "DESCRIPTION"], &rows);
    }
}

/// `rule list`: documents from [`squall_server::views::rule_summary`].
pub fn rules(format: Format, list: &Json) {
    if structured(format, list).is_none() {
        let rows = rows(list, &["ref", "trigger", "action", "enabled"]);
        table(&["REF", "TRIGGER", "ACTION", "ENABLED"], &rows);
    }
}

/// `rule get`: the document from [`squall_server::views::rule_doc`] (YAML in table mode).
pub fn rule(format: Format, doc: &Json) {
    if structured(format, doc).is_none() {
        print!("{}", serde_yaml::to_string(doc).unwrap_or_default());
    }
}

/// `rule test`: the report of rule `reference` (whose action is `action`); returns whether
/// it matched without error.
pub fn rule_test(format: Format, reference: &str, action: &str, report: &Json) -> bool {
    let matched = report["matched"].as_bool() == Some(true);
    let ok = matched && report["error"].is_null();
    if structured(format, report).is_some() {
        return ok;
    }
    let verdict = if matched { "MATCHED" } else { "not matched" };
    println!("rule {reference}: {verdict}");
    for c in report["conditions"].as_array().into_iter().flatten() {
        let outcome = match (&c["result"], &c["error"]) {
            (Json::Bool(b), _) => b.to_string(),
            (_, Json::String(e)) => format!("error: {e}"),
            _ => "error".to_string(),
        };
        println!("  {:<6} {}", outcome, cell(&c["condition"]));
    }
    if !report["parameters"].is_null() {
        println!("action {action} would run with:");
        print!("{}", yaml_block(&report["parameters"], 2));
    }
    if !report["error"].is_null() {
        println!("error: {}", cell(&report["error"]));
    }
    ok
}

/// `trigger instances`: a JSON array of trigger instance records.
pub fn trigger_instances(format: Format, list: &Json) {
    if structured(format, list).is_some() {
        return;
    }
    let rows: Vec<Vec<String>> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let enforcements = t["enforcements"].as_array().map_or(0, Vec::len);
            vec![
                cell(&t["id"]),
                cell(&t["type"]),
                cell(&t["source"]),
                cell(&t["status"]),
                cell(&t["occurred_at"]),
                enforcements.to_string(),
            ]
        })
        .collect();
    table(
        &["ID", "TYPE", "SOURCE", "STATUS", "OCCURRED", "ENFORCEMENTS"],
        &rows,
    );
}

/// `sensor list`: a JSON array of sensor states; columns no row has are left out (local
/// mode knows no counters).
pub fn sensors(format: Format, list: &Json) {
    if structured(format, list).is_some() {
        return;
    }
    let columns = [
        ("NAME", "name"),
        ("TYPE", "type"),
        ("TRIGGER", "trigger"),
        ("STATE", "state"),
        ("EVENTS", "events"),
        ("ERRORS", "errors"),
        ("LAST EVENT", "last_event_at"),
        ("LAST ERROR", "last_error"),
    ];
    let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
    let (header, keys): (Vec<&str>, Vec<&str>) = columns
        .into_iter()
        .filter(|(_, k)| items.is_empty() || items.iter().any(|o| o.get(*k).is_some()))
        .unzip();
    table(&header, &rows(list, &keys));
}
