//! Spark DDL schemas, as Feast's `JsonFormat(schema_json=...)` declares them:
//! `"driver_id integer, event_timestamp timestamp, conv_rate double"`.

use arrow_schema::{DataType, Field, Schema, TimeUnit};

/// Parses a DDL column list into an Arrow schema. Columns are nullable
/// unless followed by `NOT NULL`.
pub fn parse_ddl(text: &str) -> Result<Schema, String> {
    let mut fields = Vec::new();
    for column in split_top_level(text, ',') {
        let column = column.trim();
        if column.is_empty() {
            continue;
        }
        fields.push(parse_column(column)?);
    }
    if fields.is_empty() {
        return Err("schema declares no column".into());
    }
    let mut names: Vec<&str> = fields.iter().map(|f: &Field| f.name().as_str()).collect();
    names.sort_unstable();
    if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("column `{}` is declared twice", dup[0]));
    }
    Ok(Schema::new(fields))
}

fn parse_column(column: &str) -> Result<Field, String> {
    let (name, rest) = split_name(column)?;
    let mut type_text = rest.trim();
    let mut nullable = true;
    let upper = type_text.to_ascii_uppercase();
    if let Some(stripped) = upper.strip_suffix("NOT NULL") {
        type_text = &type_text[..stripped.trim_end().len()];
        nullable = false;
    }
    let data_type = parse_type(type_text).map_err(|e| format!("column `{name}`: {e}"))?;
    Ok(Field::new(name, data_type, nullable))
}

fn split_name(column: &str) -> Result<(String, &str), String> {
    if let Some(rest) = column.strip_prefix('`') {
        let end = rest
            .find('`')
            .ok_or_else(|| format!("`{column}`: unclosed backquote"))?;
        return Ok((rest[..end].to_string(), &rest[end + 1..]));
    }
    let rest = column.trim_start();
    let end = rest
        .find(char::is_whitespace)
        .ok_or_else(|| format!("`{column}` has a name but no type"))?;
    Ok((rest[..end].to_string(), &rest[end..]))
}

fn parse_type(text: &str) -> Result<DataType, String> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    if let Some(inner) = lower
        .strip_prefix("array<")
        .and_then(|rest| rest.strip_suffix('>'))
    {
        return Ok(DataType::new_list(parse_type(inner)?, true));
    }
    let data_type = match lower.as_str() {
        "string" | "varchar" | "char" => DataType::Utf8,
        "tinyint" | "byte" => DataType::Int8,
        "smallint" | "short" => DataType::Int16,
        "int" | "integer" => DataType::Int32,
        "bigint" | "long" => DataType::Int64,
        "float" | "real" => DataType::Float32,
        "double" => DataType::Float64,
        "boolean" | "bool" => DataType::Boolean,
        "timestamp" | "timestamp_ltz" | "timestamp_ntz" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        "date" => DataType::Date32,
        "binary" => DataType::Binary,
        _ => return Err(format!("unsupported type `{text}`")),
    };
    Ok(data_type)
}

/// Splits on `sep` outside `<...>` and `(...)` nesting.
fn split_top_level(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            c if c == sep && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feast_kafka_example_schema() {
        let schema = parse_ddl(
            "driver_id integer, event_timestamp timestamp, conv_rate double, acc_rate double, created timestamp",
        )
        .unwrap();
        assert_eq!(schema.fields().len(), 5);
        assert_eq!(schema.field(0).data_type(), &DataType::Int32);
        assert!(matches!(
            schema.field(1).data_type(),
            DataType::Timestamp(TimeUnit::Microsecond, _)
        ));
    }

    #[test]
    fn arrays_not_null_and_backquotes() {
        let schema = parse_ddl("`weird name` array<bigint>, id string NOT NULL").unwrap();
        assert_eq!(schema.field(0).name(), "weird name");
        assert_eq!(
            schema.field(0).data_type(),
            &DataType::new_list(DataType::Int64, true)
        );
        assert!(!schema.field(1).is_nullable());
    }

    #[test]
    fn errors_name_the_column() {
        let err = parse_ddl("a int, b decimal(10,2)").unwrap_err();
        assert!(err.contains("`b`"), "{err}");
        assert!(parse_ddl("a int, a string").unwrap_err().contains("twice"));
    }
}
