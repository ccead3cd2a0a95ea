//! Printing: `-o table|json|yaml`.

use crate::model::{Execution, Json};
use clap::ValueEnum;
use serde::Serialize;

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

/// Seconds between two RFC 3339 times, when both parse.
pub fn duration(start: Option<&str>, end: Option<&str>) -> Option<f64> {
    let s = chrono::DateTime::parse_from_rfc3339(start?).ok()?;
    let e = chrono::DateTime::parse_from_rfc3339(end?).ok()?;
    Some((e - s).num_microseconds()? as f64 / 1e6)
}

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
