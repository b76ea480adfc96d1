//! Template variables: `{{1}}` (positional, numbered per component from 1) or `{{first_name}}` (named).
//! A template uses one format, never both.

use super::model::{Button, Component};
use crate::error::DomainError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterFormat {
    Positional,
    Named,
}

/// One variable occurrence slot of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// Where it appears: `header`, `body` or `button.<index>`.
    pub component: String,
    /// The text between the braces: `1` or `first_name`.
    pub name: String,
    pub format: ParameterFormat,
    /// The key values are given under: the name for named variables, `<component>.<n>` for positional.
    pub key: String,
}

impl Variable {
    /// Positional body variables may also be given by their bare number (`"1"` for `body.1`).
    pub fn alias(&self) -> Option<String> {
        (self.format == ParameterFormat::Positional && self.component == "body").then(|| self.name.clone())
    }
}

/// The variable names in `text`, in order of first appearance (repeats once).
pub fn names_in(text: &str) -> Result<Vec<String>, DomainError> {
    let mut out: Vec<String> = vec![];
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end =
            after.find("}}").ok_or_else(|| DomainError::invalid("components", format!("unclosed {{{{ in {text:?}")))?;
        let name = after[..end].trim();
        let valid = !name.is_empty()
            && (name.chars().all(|c| c.is_ascii_digit())
                || (name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                    && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
        if !valid {
            return Err(DomainError::invalid(
                "components",
                format!("{{{{{name}}}}} is not a variable: use {{{{1}}}} or {{{{lower_snake_name}}}}"),
            ));
        }
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Every variable of the components, validated: one format only, positional numbers 1..n per component.
pub fn of_components(components: &[Component]) -> Result<Vec<Variable>, DomainError> {
    let mut texts: Vec<(String, &str)> = vec![];
    for c in components {
        match c {
            Component::Header { text: Some(t), .. } => texts.push(("header".into(), t)),
            Component::Body { text } => texts.push(("body".into(), text)),
            Component::Buttons { buttons } => {
                for (i, b) in buttons.iter().enumerate() {
                    if let Button::Url { url, .. } = b {
                        texts.push((format!("button.{i}"), url));
                    }
                }
            }
            Component::Header { text: None, .. } | Component::Footer { .. } => {}
        }
    }
    let mut vars = vec![];
    let mut format = None;
    for (component, text) in texts {
        let names = names_in(text)?;
        let this = if names.iter().all(|n| n.chars().all(|c| c.is_ascii_digit())) {
            ParameterFormat::Positional
        } else if names.iter().all(|n| !n.chars().all(|c| c.is_ascii_digit())) {
            ParameterFormat::Named
        } else {
            return Err(DomainError::invalid("components", "a template uses positional or named variables, not both"));
        };
        if names.is_empty() {
            continue;
        }
        if *format.get_or_insert(this) != this {
            return Err(DomainError::invalid("components", "a template uses positional or named variables, not both"));
        }
        if this == ParameterFormat::Positional {
            let mut numbers: Vec<u32> = names.iter().filter_map(|n| n.parse().ok()).collect();
            numbers.sort_unstable();
            if numbers.iter().enumerate().any(|(i, n)| *n as usize != i + 1) {
                return Err(DomainError::invalid(
                    "components",
                    format!("positional variables in {component} must be numbered 1, 2, 3... without gaps"),
                ));
            }
        }
        for name in names {
            let key = match this {
                ParameterFormat::Positional => format!("{component}.{name}"),
                ParameterFormat::Named => name.clone(),
            };
            vars.push(Variable { component: component.clone(), name, format: this, key });
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_positional_and_named_variables() {
        assert_eq!(names_in("Hi {{1}}, your code {{2}}; again {{1}}").unwrap(), vec!["1", "2"]);
        assert_eq!(names_in("Hi {{ first_name }}").unwrap(), vec!["first_name"]);
        assert!(names_in("Hi {{First Name}}").is_err());
        assert!(names_in("Hi {{1").is_err());
    }

    #[test]
    fn rejects_mixed_formats_and_gaps() {
        let mixed = [Component::Body { text: "{{1}} {{name}}".into() }];
        assert!(of_components(&mixed).is_err());
        let across = [
            Component::Header { format: super::super::HeaderFormat::Text, text: Some("{{name}}".into()) },
            Component::Body { text: "{{1}}".into() },
        ];
        assert!(of_components(&across).is_err());
        assert!(of_components(&[Component::Body { text: "{{1}} {{3}}".into() }]).is_err());
    }

    #[test]
    fn keys_are_per_component_for_positional_variables() {
        let vars = of_components(&[
            Component::Header { format: super::super::HeaderFormat::Text, text: Some("{{1}}".into()) },
            Component::Body { text: "{{1}} {{2}}".into() },
            Component::Buttons { buttons: vec![Button::Url { text: "Go".into(), url: "https://x.id/{{1}}".into() }] },
        ])
        .unwrap();
        let keys: Vec<_> = vars.iter().map(|v| v.key.as_str()).collect();
        assert_eq!(keys, ["header.1", "body.1", "body.2", "button.0.1"]);
        assert_eq!(vars[1].alias().as_deref(), Some("1"));
        assert_eq!(vars[0].alias(), None);
    }
}
