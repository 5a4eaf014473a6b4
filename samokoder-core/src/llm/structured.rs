//! Output schemas: generated from Rust types with schemars, converted to OpenAI's strict subset
//! where asked, and written into prompts where the provider has no native support.

use schemars::JsonSchema;
use serde_json::{Map, Value};

/// The JSON Schema of an output type, with a provider-safe name.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSchema {
    /// `^[a-zA-Z0-9_-]{1,64}$` (OpenAI's rule for schema names, Anthropic's for tool names).
    pub name: String,
    /// The schema, without the `$schema` meta key.
    pub schema: Value,
}

/// `format` values OpenAI's strict mode accepts; others are dropped in the strict conversion
/// (schemars emits `uint32`, `int64`, ... which it rejects).
const STRICT_FORMATS: &[&str] = &[
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
];

/// Validation keywords outside OpenAI's strict subset. Dropping them only loosens what the
/// provider enforces; the answer is still deserialised (and so type-checked) on our side.
const STRICT_DROPPED: &[&str] = &[
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minProperties",
    "maxProperties",
    "contentEncoding",
    "contentMediaType",
];

impl OutputSchema {
    /// The schema of `T` (JSON Schema 2020-12, for deserialisation).
    ///
    /// ```
    /// use samokoder_core::llm::OutputSchema;
    ///
    /// #[derive(schemars::JsonSchema, serde::Deserialize)]
    /// struct Plan {
    ///     /// The steps, in order.
    ///     steps: Vec<String>,
    ///     note: Option<String>,
    /// }
    ///
    /// let schema = OutputSchema::of::<Plan>();
    /// assert_eq!(schema.name, "Plan");
    /// assert!(schema.is_object());
    /// let strict = schema.strict().unwrap();
    /// assert_eq!(strict["additionalProperties"], false);
    /// assert_eq!(strict["required"], serde_json::json!(["note", "steps"]));
    /// ```
    pub fn of<T: JsonSchema + ?Sized>() -> Self {
        let generator = schemars::generate::SchemaSettings::draft2020_12()
            .for_deserialize()
            .into_generator();
        let mut schema = generator.into_root_schema_for::<T>().to_value();
        if let Some(map) = schema.as_object_mut() {
            map.remove("$schema");
        }
        Self {
            name: sanitize_name(&T::schema_name()),
            schema,
        }
    }

    /// Whether the root is an object schema (what both native mechanisms require).
    pub fn is_object(&self) -> bool {
        self.schema.get("type").and_then(Value::as_str) == Some("object")
    }

    /// The schema converted to OpenAI's strict subset: every object closed
    /// (`additionalProperties: false`) with all properties required, optional ones made nullable,
    /// `oneOf` as `anyOf`, `const` as a one-value `enum`, unsupported keywords dropped. `None`
    /// when the schema cannot be expressed strictly (maps with free keys, `allOf`, tuples, `true`
    /// schemas); the caller then falls back to non-strict.
    pub fn strict(&self) -> Option<Value> {
        if !self.is_object() {
            return None;
        }
        let mut schema = self.schema.clone();
        strictify(&mut schema).ok()?;
        Some(schema)
    }

    /// Instructions that put the schema into the prompt, for providers without native support.
    pub fn prompt_instructions(&self) -> String {
        format!(
            "Answer with a single JSON value that conforms to the JSON Schema below. Output only the JSON: \
             no explanations, no code fences.\n\nJSON Schema:\n{}",
            self.schema
        )
    }
}

/// The message that asks again after an unusable answer.
pub(crate) fn reask_message(error: &str) -> String {
    format!(
        "Your previous answer could not be used: {error}\n\nAnswer again with only the corrected JSON \
         value that conforms to the required schema."
    )
}

fn sanitize_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "output".to_owned()
    } else {
        cleaned
    }
}

fn make_nullable(schema: &mut Value) {
    match schema.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = t.clone();
            schema["type"] = Value::Array(vec![Value::String(t), Value::String("null".into())]);
            if let Some(Value::Array(values)) = schema.get_mut("enum")
                && !values.contains(&Value::Null)
            {
                values.push(Value::Null);
            }
        }
        Some(Value::Array(types)) => {
            if !types.iter().any(|t| t == "null") {
                types.push(Value::String("null".into()));
            }
        }
        _ => {
            let inner = std::mem::take(schema);
            let is_null_already = inner
                .get("anyOf")
                .and_then(Value::as_array)
                .is_some_and(|v| {
                    v.iter()
                        .any(|s| s.get("type") == Some(&Value::String("null".into())))
                });
            *schema = if is_null_already {
                inner
            } else {
                serde_json::json!({ "anyOf": [inner, { "type": "null" }] })
            };
        }
    }
}

fn strictify(node: &mut Value) -> Result<(), ()> {
    let Value::Object(map) = node else {
        // `true`/`false` schemas have no strict form.
        return Err(());
    };
    if map.contains_key("allOf") || map.contains_key("prefixItems") || map.contains_key("not") {
        return Err(());
    }
    for key in STRICT_DROPPED {
        map.remove(*key);
    }
    if let Some(Value::String(format)) = map.get("format")
        && !STRICT_FORMATS.contains(&format.as_str())
    {
        map.remove("format");
    }
    if let Some(one_of) = map.remove("oneOf") {
        map.insert("anyOf".into(), one_of);
    }
    if let Some(value) = map.remove("const") {
        map.insert("enum".into(), Value::Array(vec![value]));
    }
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(defs)) = map.get_mut(key) {
            for def in defs.values_mut() {
                strictify(def)?;
            }
        }
    }
    if let Some(items) = map.get_mut("items") {
        strictify(items)?;
    }
    if let Some(Value::Array(variants)) = map.get_mut("anyOf") {
        for variant in variants {
            strictify(variant)?;
        }
    }
    let is_object =
        map.get("type").and_then(Value::as_str) == Some("object") || map.contains_key("properties");
    if is_object {
        match map.get("additionalProperties") {
            None | Some(Value::Bool(false)) => {}
            // A map with free keys (`HashMap<String, T>`): strict mode cannot express it.
            Some(_) => return Err(()),
        }
        if map.contains_key("patternProperties") {
            return Err(());
        }
        map.insert("additionalProperties".into(), Value::Bool(false));
        let required: Vec<String> = map
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut properties = match map.remove("properties") {
            Some(Value::Object(properties)) => properties,
            Some(_) => return Err(()),
            None => Map::new(),
        };
        for (name, property) in properties.iter_mut() {
            strictify(property)?;
            if !required.contains(name) {
                make_nullable(property);
            }
        }
        let all: Vec<Value> = properties.keys().cloned().map(Value::String).collect();
        map.insert("properties".into(), Value::Object(properties));
        map.insert("required".into(), Value::Array(all));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use serde::Deserialize;
    use std::collections::HashMap;

    #[allow(dead_code)]
    #[derive(JsonSchema, Deserialize)]
    struct Step {
        /// What to do.
        description: String,
        attempts: u32,
        kind: Kind,
        file: Option<File>,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Command,
        SaveFile,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema, Deserialize)]
    struct File {
        path: String,
    }

    #[allow(dead_code)]
    #[derive(JsonSchema, Deserialize)]
    struct Loose {
        env: HashMap<String, String>,
    }

    fn find_key<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    if k == key {
                        out.push(child);
                    }
                    find_key(child, key, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|c| find_key(c, key, out)),
            _ => {}
        }
    }

    #[test]
    fn strict_conversion_closes_every_object() {
        let schema = OutputSchema::of::<Step>();
        assert_eq!(schema.name, "Step");
        assert!(schema.schema.get("$schema").is_none());
        let strict = schema.strict().unwrap();
        assert_eq!(
            strict["required"],
            serde_json::json!(["attempts", "description", "file", "kind"])
        );
        // The optional nested struct becomes nullable, and the nested object is closed too.
        let file = &strict["properties"]["file"];
        assert!(
            file["anyOf"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["type"] == "null"),
            "{file}"
        );
        let mut closed = Vec::new();
        find_key(&strict, "additionalProperties", &mut closed);
        assert!(closed.len() >= 2 && closed.iter().all(|v| **v == Value::Bool(false)));
        // `uint32` is not a strict format and `minimum` is not in the subset.
        let mut formats = Vec::new();
        find_key(&strict, "format", &mut formats);
        assert!(formats.is_empty(), "{formats:?}");
        assert!(strict["properties"]["attempts"].get("minimum").is_none());
    }

    #[test]
    fn free_maps_have_no_strict_form() {
        assert!(OutputSchema::of::<Loose>().strict().is_none());
        assert!(!OutputSchema::of::<Vec<String>>().is_object());
        assert!(OutputSchema::of::<Vec<String>>().strict().is_none());
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_name("Vec<String>"), "Vec_String_");
        assert_eq!(sanitize_name(""), "output");
        assert_eq!(sanitize_name(&"x".repeat(100)).len(), 64);
    }
}
