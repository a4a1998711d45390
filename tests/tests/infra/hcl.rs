//! Reading the Terraform: every `.tf` file of a module folder parsed with hcl-rs, and the few
//! expression shapes the checks need (literals, object keys, references).

use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression, ObjectKey, TraversalOperator};
use serde_json::Value;

/// One Terraform module: the blocks of all of its `.tf` files.
pub struct Module {
    pub dir: PathBuf,
    bodies: Vec<Body>,
    texts: Vec<String>,
}

impl Module {
    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "tf"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("{}: no .tf files", dir.display()));
        }
        let texts = files
            .iter()
            .map(|file| {
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bodies = files
            .iter()
            .zip(&texts)
            .map(|(file, text)| hcl::parse(text).map_err(|e| format!("{}: {e}", file.display())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            dir: dir.to_path_buf(),
            bodies,
            texts,
        })
    }

    /// The raw text of each file.
    pub fn texts(&self) -> &[String] {
        &self.texts
    }

    /// Top-level blocks of a kind (`resource`, `data`, `module`, `locals`, ...).
    pub fn blocks<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.bodies
            .iter()
            .flat_map(|b| b.blocks())
            .filter(move |b| b.identifier() == kind)
    }

    /// `resource "<rtype>" "<name>"` (or `data`) blocks of a type, with their names.
    pub fn typed<'a>(&'a self, kind: &'a str, rtype: &'a str) -> Vec<(String, &'a Block)> {
        self.blocks(kind)
            .filter(|b| label(b, 0) == Some(rtype))
            .filter_map(|b| label(b, 1).map(|name| (name.to_string(), b)))
            .collect()
    }

    pub fn data<'a>(&'a self, dtype: &'a str, name: &str) -> Option<&'a Block> {
        self.typed("data", dtype)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
    }

    /// `local.<name>`'s expression.
    pub fn local(&self, name: &str) -> Option<&Expression> {
        self.blocks("locals").find_map(|b| attr(&b.body, name))
    }

    /// `module "<name>"` blocks with their `source`.
    pub fn module_calls(&self) -> Vec<(String, String, &Block)> {
        self.blocks("module")
            .filter_map(|b| {
                let name = label(b, 0)?.to_string();
                let source = match attr(&b.body, "source")? {
                    Expression::String(s) => s.clone(),
                    _ => return None,
                };
                Some((name, source, b))
            })
            .collect()
    }
}

pub fn label(block: &Block, index: usize) -> Option<&str> {
    block.labels().get(index).map(|l| l.as_str())
}

pub fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.expr)
}

/// Nested blocks of a kind, including the `content` of `dynamic "<kind>"` blocks (marked true).
pub fn nested<'a>(body: &'a Body, kind: &str) -> Vec<(&'a Body, bool)> {
    let mut found: Vec<(&Body, bool)> = body
        .blocks()
        .filter(|b| b.identifier() == kind)
        .map(|b| (&b.body, false))
        .collect();
    for dynamic in body.blocks().filter(|b| b.identifier() == "dynamic") {
        if label(dynamic, 0) == Some(kind) {
            found.extend(
                dynamic
                    .body
                    .blocks()
                    .filter(|b| b.identifier() == "content")
                    .map(|b| (&b.body, true)),
            );
        }
    }
    found
}

pub fn key_name(key: &ObjectKey) -> Option<String> {
    match key {
        ObjectKey::Identifier(id) => Some(id.as_str().to_string()),
        ObjectKey::Expression(Expression::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The keys of an object constructor.
pub fn object_keys(expr: &Expression) -> Result<Vec<String>, String> {
    match expr {
        Expression::Object(object) => object
            .keys()
            .map(|k| key_name(k).ok_or_else(|| format!("object key is not a name: {k:?}")))
            .collect(),
        other => Err(format!("not an object constructor: {other}")),
    }
}

/// An object constructor's value for `key`.
pub fn object_get<'a>(expr: &'a Expression, key: &str) -> Option<&'a Expression> {
    match expr {
        Expression::Object(object) => object
            .iter()
            .find(|(k, _)| key_name(k).as_deref() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// The string literals of an array constructor (each element must be one).
pub fn string_list(expr: &Expression) -> Result<Vec<String>, String> {
    match expr {
        Expression::Array(items) => items
            .iter()
            .map(|item| match item {
                Expression::String(s) => Ok(s.clone()),
                other => Err(format!("not a string literal: {other}")),
            })
            .collect(),
        other => Err(format!("not a list of string literals: {other}")),
    }
}

/// A literal expression as JSON (what `jsonencode` of it gives).
pub fn to_json(expr: &Expression) -> Result<Value, String> {
    to_json_with(expr, &|_| None)
}

/// As [`to_json`], with `example` giving a value for what is not a literal (a reference to a
/// variable, say): the pattern as one deployment would have it.
pub fn to_json_with(
    expr: &Expression,
    example: &dyn Fn(&Expression) -> Option<Value>,
) -> Result<Value, String> {
    let to_json = |e: &Expression| to_json_with(e, example);
    if let Some(value) = example(expr) {
        return Ok(value);
    }
    Ok(match expr {
        Expression::Null => Value::Null,
        Expression::Bool(b) => Value::Bool(*b),
        Expression::Number(n) => serde_json::to_value(n).map_err(|e| e.to_string())?,
        Expression::String(s) => Value::String(s.clone()),
        Expression::Array(items) => {
            Value::Array(items.iter().map(&to_json).collect::<Result<_, _>>()?)
        }
        Expression::Object(object) => {
            let mut map = serde_json::Map::new();
            for (k, v) in object {
                let key = key_name(k).ok_or_else(|| format!("object key is not a name: {k:?}"))?;
                map.insert(key, to_json(v)?);
            }
            Value::Object(map)
        }
        Expression::Parenthesis(inner) => to_json(inner)?,
        other => return Err(format!("not a literal: {other}")),
    })
}

/// Every reference (`a.b.c`) inside an expression, as its names.
pub fn references(expr: &Expression) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    collect_references(expr, &mut found);
    found
}

fn collect_references(expr: &Expression, found: &mut Vec<Vec<String>>) {
    match expr {
        Expression::Variable(v) => found.push(vec![v.as_str().to_string()]),
        Expression::Traversal(t) => {
            if let Expression::Variable(root) = &t.expr {
                let mut path = vec![root.as_str().to_string()];
                for op in &t.operators {
                    match op {
                        TraversalOperator::GetAttr(id) => path.push(id.as_str().to_string()),
                        _ => break,
                    }
                }
                found.push(path);
            } else {
                collect_references(&t.expr, found);
            }
        }
        Expression::Array(items) => items.iter().for_each(|i| collect_references(i, found)),
        Expression::Object(object) => object.values().for_each(|v| collect_references(v, found)),
        Expression::FuncCall(call) => call.args.iter().for_each(|a| collect_references(a, found)),
        Expression::Parenthesis(inner) => collect_references(inner, found),
        Expression::Conditional(c) => {
            collect_references(&c.cond_expr, found);
            collect_references(&c.true_expr, found);
            collect_references(&c.false_expr, found);
        }
        _ => {}
    }
}
