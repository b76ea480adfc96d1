//! Rendering a template for one recipient. Each variable takes the first value found in: the explicit
//! values of the send request, the contact's attributes (named variables; `name` falls back to the
//! contact's name), the template's defaults. A variable with no value is an error naming it.

use super::model::{Component, HeaderFormat};
use super::variables::{ParameterFormat, Variable};
use super::Template;
use crate::error::DomainError;
use crate::values::{attribute_text, Attributes};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Key of the explicit value that supplies a media header's link.
pub const HEADER_MEDIA_KEY: &str = "header_media";

/// The sources of variable values for one recipient.
#[derive(Debug, Clone, Copy)]
pub struct RenderInput<'a> {
    pub explicit: &'a BTreeMap<String, String>,
    pub attributes: &'a Attributes,
    pub contact_name: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RenderedParameter {
    Text {
        /// The variable name for named templates (Meta's `parameter_name`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        text: String,
    },
    Media {
        format: HeaderFormat,
        link: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedComponent {
    /// `header`, `body` or `button`.
    pub kind: String,
    /// Button index, for buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub parameters: Vec<RenderedParameter>,
}

/// A template filled for one recipient: what the provider needs, plus a readable preview of the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedTemplate {
    pub components: Vec<RenderedComponent>,
    pub body_preview: String,
}

fn value_for(template: &Template, v: &Variable, input: &RenderInput<'_>) -> Option<String> {
    let explicit = input.explicit.get(&v.key).or_else(|| v.alias().and_then(|a| input.explicit.get(&a)));
    if let Some(x) = explicit {
        return Some(x.clone());
    }
    if v.format == ParameterFormat::Named {
        if let Some(x) = input.attributes.get(&v.name).and_then(attribute_text) {
            return Some(x);
        }
        if v.name == "name" {
            if let Some(n) = input.contact_name {
                return Some(n.to_owned());
            }
        }
    }
    template.defaults.get(&v.key).cloned()
}

fn substitute(text: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push_str(values.get(after[..end].trim()).map(String::as_str).unwrap_or(""));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Fills every variable of `template` for one recipient.
pub fn render(template: &Template, input: &RenderInput<'_>) -> Result<RenderedTemplate, DomainError> {
    let vars = template.variables();
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    for v in &vars {
        let value = value_for(template, v, input).ok_or_else(|| DomainError::MissingVariable(v.key.clone()))?;
        values.insert(v.key.as_str(), value);
    }
    let params = |component: &str| -> Vec<RenderedParameter> {
        vars.iter()
            .filter(|v| v.component == component)
            .map(|v| RenderedParameter::Text {
                name: (v.format == ParameterFormat::Named).then(|| v.name.clone()),
                text: values[v.key.as_str()].clone(),
            })
            .collect()
    };
    let mut components = vec![];
    let mut body_preview = String::new();
    for c in &template.components {
        match c {
            Component::Header { format: HeaderFormat::Text, .. } => {
                let p = params("header");
                if !p.is_empty() {
                    components.push(RenderedComponent { kind: "header".into(), index: None, parameters: p });
                }
            }
            Component::Header { format, .. } => {
                let link = input
                    .explicit
                    .get(HEADER_MEDIA_KEY)
                    .cloned()
                    .ok_or_else(|| DomainError::MissingVariable(HEADER_MEDIA_KEY.into()))?;
                components.push(RenderedComponent {
                    kind: "header".into(),
                    index: None,
                    parameters: vec![RenderedParameter::Media { format: *format, link }],
                });
            }
            Component::Body { text } => {
                let by_name: BTreeMap<&str, String> = vars
                    .iter()
                    .filter(|v| v.component == "body")
                    .map(|v| (v.name.as_str(), values[v.key.as_str()].clone()))
                    .collect();
                body_preview = substitute(text, &by_name);
                let p = params("body");
                if !p.is_empty() {
                    components.push(RenderedComponent { kind: "body".into(), index: None, parameters: p });
                }
            }
            Component::Buttons { buttons } => {
                for i in 0..buttons.len() {
                    let p = params(&format!("button.{i}"));
                    if !p.is_empty() {
                        components.push(RenderedComponent { kind: "button".into(), index: Some(i), parameters: p });
                    }
                }
            }
            Component::Footer { .. } => {}
        }
    }
    Ok(RenderedTemplate { components, body_preview })
}

#[cfg(test)]
mod tests {
    use super::super::tests::promo;
    use super::*;
    use serde_json::json;

    fn text(name: &str, t: &str) -> RenderedParameter {
        RenderedParameter::Text { name: Some(name.into()), text: t.into() }
    }

    #[test]
    fn explicit_values_win_over_attributes_which_win_over_defaults() {
        let t = promo();
        let explicit = BTreeMap::from([("discount".to_string(), "50%".to_string())]);
        let attributes =
            Attributes::from([("first_name".to_string(), json!("Budi")), ("discount".to_string(), json!("5%"))]);
        let r = render(&t, &RenderInput { explicit: &explicit, attributes: &attributes, contact_name: None }).unwrap();
        assert_eq!(r.body_preview, "Diskon 50% untuk Budi di kota Anda");
        assert_eq!(r.components[0].parameters, vec![text("first_name", "Budi")]);
        assert_eq!(
            r.components[1].parameters,
            vec![text("discount", "50%"), text("first_name", "Budi"), text("city", "kota Anda")]
        );
    }

    #[test]
    fn a_missing_variable_is_named() {
        let t = promo();
        let attributes = Attributes::from([("first_name".to_string(), json!("Budi"))]);
        let err = render(&t, &RenderInput { explicit: &BTreeMap::new(), attributes: &attributes, contact_name: None })
            .unwrap_err();
        assert_eq!(err, DomainError::MissingVariable("discount".into()));
    }

    #[test]
    fn positional_variables_take_bare_numbers_and_media_headers_need_a_link() {
        use super::super::{Aggregate, Category, Language, TemplateCommand, TemplateName};
        let events = Template::default()
            .decide(TemplateCommand::Create {
                name: TemplateName::parse("receipt").unwrap(),
                language: Language::parse("en").unwrap(),
                category: Category::Utility,
                components: vec![
                    Component::Header { format: HeaderFormat::Document, text: None },
                    Component::Body { text: "Order {{1}} costs {{2}}".into() },
                ],
                defaults: BTreeMap::new(),
            })
            .unwrap();
        let t = Template::replay(&events);
        let mut explicit =
            BTreeMap::from([("1".to_string(), "A-7".to_string()), ("body.2".to_string(), "Rp50.000".to_string())]);
        let input = RenderInput { explicit: &explicit, attributes: &Attributes::new(), contact_name: None };
        assert_eq!(render(&t, &input).unwrap_err(), DomainError::MissingVariable(HEADER_MEDIA_KEY.into()));
        explicit.insert(HEADER_MEDIA_KEY.into(), "https://cdn.example/inv.pdf".into());
        let input = RenderInput { explicit: &explicit, attributes: &Attributes::new(), contact_name: None };
        let r = render(&t, &input).unwrap();
        assert_eq!(r.body_preview, "Order A-7 costs Rp50.000");
        assert_eq!(
            r.components[1].parameters,
            vec![
                RenderedParameter::Text { name: None, text: "A-7".into() },
                RenderedParameter::Text { name: None, text: "Rp50.000".into() }
            ]
        );
    }
}
