//! `{{ expr }}` templates inside JSON value trees.

use super::{convert, Expr, ExprError, Vars};
use serde_json::Value;

/// A JSON value tree whose strings may contain `{{ expr }}`, compiled once.
///
/// - A string that is exactly one `{{ expr }}` (surrounding whitespace allowed) renders to
///   the expression's value with its type (map, array, number, ...).
/// - A string with text around one or more `{{ }}` renders to a string: strings are
///   inserted as is, `()` as nothing, other values as compact JSON.
/// - Strings without `{{` are literals; map keys are always literal; maps and arrays are
///   walked recursively.
///
/// There is no escape syntax: to produce a literal `{{`, write `{{ "{{" }}`.
#[derive(Debug, Clone)]
pub struct Template {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    /// A subtree without any expression.
    Literal(Value),
    /// A string that is exactly one expression: keeps the value's type.
    Whole(Expr),
    /// A string mixing text and expressions.
    Interp(Vec<Part>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Expr(Expr),
}

impl Template {
    /// Compile every `{{ }}` inside `value`. Err names the failing `{{ }}` (or the unclosed
    /// one); line/column are inside that expression.
    pub fn compile(value: &Value) -> Result<Template, ExprError> {
        Ok(Template {
            root: compile_node(value)?,
        })
    }

    /// Render against `vars`. Err names the `{{ }}` that failed, or says the rendered
    /// value is larger than [`MAX_RENDERED_BYTES`].
    pub fn render(&self, vars: &mut Vars) -> Result<Value, ExprError> {
        if let Node::Literal(v) = &self.root {
            return Ok(v.clone());
        }
        let v = render_node(&self.root, vars)?;
        let size = json_size(&v);
        if size > MAX_RENDERED_BYTES {
            return Err(too_big(size));
        }
        Ok(v)
    }

    /// True when one of its expressions mentions `name` (see [`Expr::mentions`]).
    pub fn mentions(&self, name: &str) -> bool {
        fn walk(n: &Node, name: &str) -> bool {
            match n {
                Node::Literal(_) => false,
                Node::Whole(e) => e.mentions(name),
                Node::Interp(parts) => parts
                    .iter()
                    .any(|p| matches!(p, Part::Expr(e) if e.mentions(name))),
                Node::Array(items) => items.iter().any(|i| walk(i, name)),
                Node::Object(fields) => fields.iter().any(|(_, v)| walk(v, name)),
            }
        }
        walk(&self.root, name)
    }

    /// True when the template contains no expression (it renders to itself).
    pub fn is_static(&self) -> bool {
        matches!(self.root, Node::Literal(_))
    }
}

/// Largest value a template may render to, as compact JSON: 1 MiB.
pub const MAX_RENDERED_BYTES: usize = 1024 * 1024;

fn too_big(size: usize) -> ExprError {
    ExprError::plain(format!(
        "the rendered value is {size} bytes or more, over the limit of {MAX_RENDERED_BYTES} bytes (1 MiB) per rendered template: render less (pass a reference, not the data)"
    ))
}

/// The length of `v` as compact JSON.
fn json_size(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

fn compile_node(value: &Value) -> Result<Node, ExprError> {
    let node = match value {
        Value::String(s) => compile_string(s)?,
        Value::Array(items) => {
            let nodes = items
                .iter()
                .map(compile_node)
                .collect::<Result<Vec<_>, _>>()?;
            if nodes.iter().all(|n| matches!(n, Node::Literal(_))) {
                Node::Literal(value.clone())
            } else {
                Node::Array(nodes)
            }
        }
        Value::Object(map) => {
            let mut nodes = Vec::with_capacity(map.len());
            for (k, v) in map {
                nodes.push((k.clone(), compile_node(v)?));
            }
            if nodes.iter().all(|(_, n)| matches!(n, Node::Literal(_))) {
                Node::Literal(value.clone())
            } else {
                Node::Object(nodes)
            }
        }
        other => Node::Literal(other.clone()),
    };
    Ok(node)
}

fn compile_string(s: &str) -> Result<Node, ExprError> {
    if !s.contains("{{") {
        return Ok(Node::Literal(Value::String(s.to_string())));
    }
    let pieces = split(s)?;
    let mut parts = Vec::with_capacity(pieces.len());
    for piece in pieces {
        parts.push(match piece {
            Piece::Text(t) => Part::Text(t.to_string()),
            Piece::Expr(src) => Part::Expr(Expr::compile(src).map_err(|e| in_braces(src, e))?),
        });
    }
    let mut exprs = parts.iter().filter(|p| matches!(p, Part::Expr(_)));
    let only_space = parts.iter().all(|p| match p {
        Part::Text(t) => t.trim().is_empty(),
        Part::Expr(_) => true,
    });
    if let (Some(Part::Expr(e)), None, true) = (exprs.next(), exprs.next(), only_space) {
        return Ok(Node::Whole(e.clone()));
    }
    Ok(Node::Interp(parts))
}

fn in_braces(src: &str, err: ExprError) -> ExprError {
    ExprError {
        message: format!("in `{{{{{src}}}}}`: {}", err.message),
        ..err
    }
}

fn render_node(node: &Node, vars: &mut Vars) -> Result<Value, ExprError> {
    Ok(match node {
        Node::Literal(v) => v.clone(),
        Node::Whole(e) => e.eval(vars).map_err(|err| in_braces(e.source(), err))?,
        Node::Interp(parts) => {
            let mut out = String::new();
            for part in parts {
                match part {
                    Part::Text(t) => out.push_str(t),
                    Part::Expr(e) => {
                        let v = e
                            .eval_dynamic(vars)
                            .map_err(|err| in_braces(e.source(), err))?;
                        append(&mut out, &v).map_err(|m| in_braces(e.source(), m.into()))?;
                        if out.len() > MAX_RENDERED_BYTES {
                            return Err(in_braces(e.source(), too_big(out.len())));
                        }
                    }
                }
            }
            Value::String(out)
        }
        Node::Array(nodes) => Value::Array(
            nodes
                .iter()
                .map(|n| render_node(n, vars))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Node::Object(nodes) => {
            let mut map = serde_json::Map::with_capacity(nodes.len());
            for (k, n) in nodes {
                map.insert(k.clone(), render_node(n, vars)?);
            }
            Value::Object(map)
        }
    })
}

/// Append an interpolated value: strings as is, `()` as nothing, others as compact JSON.
fn append(out: &mut String, v: &rhai::Dynamic) -> Result<(), convert::ToJsonError> {
    if v.is_unit() {
        return Ok(());
    }
    if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        out.push_str(s.as_str());
        return Ok(());
    }
    if let Ok(c) = v.as_char() {
        out.push(c);
        return Ok(());
    }
    out.push_str(&convert::to_json(v)?.to_string());
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Expr(&'a str),
}

/// Split a string into text and `{{ }}` expression sources (without the braces).
///
/// The closing `}}` is found by scanning the expression: braces are counted (so map literals
/// like `#{a: #{b: 1}}` work) and string/char literals are skipped.
fn split(s: &str) -> Result<Vec<Piece<'_>>, ExprError> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        let body = &rest[start + 2..];
        let end = closing(body).ok_or_else(|| {
            let shown: String = rest[start..].chars().take(40).collect();
            ExprError::plain(format!("unclosed `{{{{` in `{shown}`: missing `}}}}`"))
        })?;
        let src = &body[..end];
        if src.trim().is_empty() {
            return Err(ExprError::plain(
                "empty `{{ }}`: put an expression between the braces",
            ));
        }
        pieces.push(Piece::Expr(src));
        rest = &body[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// Byte offset of the `}}` that closes an expression starting at the beginning of `body`.
fn closing(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' && q != b'`' {
                i += 1; // skip the escaped byte
            } else if b == q {
                quote = None;
            }
        } else {
            match b {
                b'"' | b'\'' | b'`' => quote = Some(b),
                b'{' => depth += 1,
                b'}' if depth > 0 => depth -= 1,
                b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        let mut v = Vars::new();
        v.set("name", &json!("db1"));
        v.set("port", &json!(5432));
        v.set(
            "spec",
            &json!({"engine": "postgres", "size": 20, "tags": ["a", "b"]}),
        );
        v.set("nothing", &json!(null));
        v
    }

    fn render(t: Value) -> Result<Value, ExprError> {
        Template::compile(&t)?.render(&mut vars())
    }

    #[test]
    fn split_handles_nested_braces_and_strings() {
        assert_eq!(
            split("a {{ #{x: #{y: 1}} }} b").unwrap(),
            vec![
                Piece::Text("a "),
                Piece::Expr(" #{x: #{y: 1}} "),
                Piece::Text(" b")
            ]
        );
        assert_eq!(
            split(r#"{{ "}}" + "\"}}" }}"#).unwrap(),
            vec![Piece::Expr(r#" "}}" + "\"}}" "#)]
        );
        assert!(split("x {{ name ")
            .unwrap_err()
            .message
            .contains("unclosed"));
        assert!(split("{{ }}").unwrap_err().message.contains("empty"));
    }

    #[test]
    fn whole_expression_keeps_type() {
        assert_eq!(
            render(json!("{{ spec }}")).unwrap(),
            json!({"engine": "postgres", "size": 20, "tags": ["a", "b"]})
        );
        assert_eq!(render(json!("  {{ port }} ")).unwrap(), json!(5432));
        assert_eq!(render(json!("{{ spec.tags }}")).unwrap(), json!(["a", "b"]));
        assert_eq!(render(json!("{{ nothing }}")).unwrap(), json!(null));
        assert_eq!(render(json!("{{ port / 2.0 }}")).unwrap(), json!(2716.0));
    }

    #[test]
    fn mixed_text_renders_a_string() {
        assert_eq!(
            render(json!("db-{{ name }}:{{ port }}")).unwrap(),
            json!("db-db1:5432")
        );
        assert_eq!(
            render(json!("tags={{ spec.tags }} n=[{{ nothing }}]")).unwrap(),
            json!("tags=[\"a\",\"b\"] n=[]")
        );
        assert_eq!(
            render(json!("{{ name }}{{ port }}")).unwrap(),
            json!("db15432")
        );
        assert_eq!(
            render(json!("{{ \"{{\" }} literal")).unwrap(),
            json!("{{ literal")
        );
    }

    #[test]
    fn trees_are_walked_and_keys_are_literal() {
        let t = json!({"{{ name }}": ["{{ port }}", "x", {"n": "{{ name }}"}], "fixed": [1, 2]});
        assert_eq!(
            render(t).unwrap(),
            json!({"{{ name }}": [5432, "x", {"n": "db1"}], "fixed": [1, 2]})
        );
    }

    #[test]
    fn static_templates() {
        let t = Template::compile(&json!({"a": [1, "two", {"b": null}]})).unwrap();
        assert!(t.is_static());
        assert_eq!(
            t.render(&mut Vars::new()).unwrap(),
            json!({"a": [1, "two", {"b": null}]})
        );
        assert!(!Template::compile(&json!({"a": ["{{ 1 }}"]}))
            .unwrap()
            .is_static());
    }

    #[test]
    fn compile_errors_name_the_expression() {
        let err = Template::compile(&json!({"a": "x {{ name + }} y"})).unwrap_err();
        assert!(
            err.message.starts_with("in `{{ name + }}`:"),
            "{}",
            err.message
        );
        assert!(err.column.is_some());
        let err = Template::compile(&json!(["{{ name"])).unwrap_err();
        assert!(err.message.contains("unclosed"), "{}", err.message);
    }

    #[test]
    fn render_errors_name_the_expression() {
        let err = render(json!("{{ spec.missing }}")).unwrap_err();
        assert!(
            err.message.contains("in `{{ spec.missing }}`"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("`missing` not found"),
            "{}",
            err.message
        );
        let err = render(json!("a {{ undefined_var }} b")).unwrap_err();
        assert!(err.message.contains("undefined_var"), "{}", err.message);
    }

    #[test]
    fn a_rendered_value_is_bounded_in_size() {
        let mut v = vars();
        v.set("big", &json!("x".repeat(600 * 1024)));
        let one = Template::compile(&json!({"a": "{{ big }}"})).unwrap();
        assert!(one.render(&mut v).is_ok());
        for t in [
            json!("{{ big }}-{{ big }}"),
            json!(["{{ big }}", "{{ big }}"]),
        ] {
            let err = Template::compile(&t).unwrap().render(&mut v).unwrap_err();
            assert!(
                err.message.contains("over the limit of 1048576 bytes"),
                "{err:?}"
            );
        }
    }
}
