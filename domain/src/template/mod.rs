//! Template: a WhatsApp message template (name, language, category, components with `{{1}}` or
//! `{{name}}` variables) and its review status, which Meta decides.
//!
//! - [`model`]: the validated parts of a template (name, language, category, components).
//! - [`variables`]: finding the variables in component text.
//! - [`render`]: filling the variables for one recipient.

pub mod model;
pub mod render;
pub mod variables;

pub use model::{Button, Category, Component, HeaderFormat, Language, ReviewStatus, TemplateName};
pub use render::{RenderInput, RenderedComponent, RenderedParameter, RenderedTemplate};
pub use variables::{ParameterFormat, Variable};

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Template {
    pub created: bool,
    pub name: Option<TemplateName>,
    pub language: Option<Language>,
    pub category: Option<Category>,
    pub components: Vec<Component>,
    /// Default values by variable key, used when neither the send request nor the contact fills one.
    pub defaults: BTreeMap<String, String>,
    pub status: ReviewStatus,
    pub status_reason: Option<String>,
}

#[derive(Debug, Clone)]
pub enum TemplateCommand {
    Create {
        name: TemplateName,
        language: Language,
        category: Category,
        components: Vec<Component>,
        defaults: BTreeMap<String, String>,
    },
    /// A review outcome reported by the provider (or an operator for sandbox channels).
    RecordReview { status: ReviewStatus, reason: Option<String> },
}

crate::event::event_enum! {
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum TemplateEvent {
        #[serde(rename = "template.created")]
        Created {
            name: TemplateName,
            language: Language,
            category: Category,
            components: Vec<Component>,
            defaults: BTreeMap<String, String>,
        },
        #[serde(rename = "template.review_status_changed")]
        ReviewStatusChanged { status: ReviewStatus, reason: Option<String> },
    }
}

impl Template {
    /// All variables of the template, in component order.
    pub fn variables(&self) -> Vec<Variable> {
        variables::of_components(&self.components).unwrap_or_default()
    }

    /// Whether messages may be sent with this template now.
    pub fn is_sendable(&self) -> bool {
        self.status.is_sendable()
    }
}

impl Aggregate for Template {
    const CATEGORY: &'static str = "template";
    type Command = TemplateCommand;
    type Event = TemplateEvent;

    fn decide(&self, command: TemplateCommand) -> Result<Vec<TemplateEvent>, DomainError> {
        match command {
            TemplateCommand::Create { name, language, category, components, defaults } => {
                if self.created {
                    return Err(DomainError::AlreadyExists("template"));
                }
                model::validate_components(&components)?;
                let vars = variables::of_components(&components)?;
                for key in defaults.keys() {
                    if !vars.iter().any(|v| v.key == *key || v.alias().as_deref() == Some(key.as_str())) {
                        return Err(DomainError::invalid(
                            format!("defaults.{key}"),
                            "names no variable of the template",
                        ));
                    }
                }
                let defaults = defaults
                    .into_iter()
                    .map(|(k, v)| {
                        let key = vars.iter().find(|x| x.key == k || x.alias().as_deref() == Some(k.as_str()));
                        (key.map(|x| x.key.clone()).unwrap_or(k), v)
                    })
                    .collect();
                Ok(vec![TemplateEvent::Created { name, language, category, components, defaults }])
            }
            TemplateCommand::RecordReview { status, reason } => {
                if !self.created {
                    return Err(DomainError::NotFound("template"));
                }
                if status == self.status && reason == self.status_reason {
                    return Ok(vec![]);
                }
                Ok(vec![TemplateEvent::ReviewStatusChanged { status, reason }])
            }
        }
    }

    fn evolve(mut self, event: &TemplateEvent) -> Self {
        match event {
            TemplateEvent::Created { name, language, category, components, defaults } => {
                self.created = true;
                self.name = Some(name.clone());
                self.language = Some(language.clone());
                self.category = Some(*category);
                self.components = components.clone();
                self.defaults = defaults.clone();
                self.status = ReviewStatus::Pending;
            }
            TemplateEvent::ReviewStatusChanged { status, reason } => {
                self.status = status.clone();
                self.status_reason = reason.clone();
            }
        }
        self
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn promo() -> Template {
        let events = Template::default()
            .decide(TemplateCommand::Create {
                name: TemplateName::parse("promo_oct").unwrap(),
                language: Language::parse("id").unwrap(),
                category: Category::Marketing,
                components: vec![
                    Component::Header { format: HeaderFormat::Text, text: Some("Halo {{first_name}}".into()) },
                    Component::Body { text: "Diskon {{discount}} untuk {{first_name}} di {{city}}".into() },
                    Component::Footer { text: "Balas STOP untuk berhenti".into() },
                ],
                defaults: BTreeMap::from([("city".to_string(), "kota Anda".to_string())]),
            })
            .unwrap();
        Template::replay(&events)
    }

    #[test]
    fn new_templates_are_pending_and_not_sendable() {
        let t = promo();
        assert_eq!(t.status, ReviewStatus::Pending);
        assert!(!t.is_sendable());
    }

    #[test]
    fn review_updates_status_and_repeats_are_absorbed() {
        let t = promo();
        let e = t.decide(TemplateCommand::RecordReview { status: ReviewStatus::Approved, reason: None }).unwrap();
        let t = t.evolve(&e[0]);
        assert!(t.is_sendable());
        assert!(t
            .decide(TemplateCommand::RecordReview { status: ReviewStatus::Approved, reason: None })
            .unwrap()
            .is_empty());
        let e = t
            .decide(TemplateCommand::RecordReview { status: ReviewStatus::parse("SOMETHING_NEW"), reason: None })
            .unwrap();
        assert_eq!(t.evolve(&e[0]).status, ReviewStatus::Other("SOMETHING_NEW".into()));
    }

    #[test]
    fn defaults_must_name_a_variable() {
        let err = Template::default()
            .decide(TemplateCommand::Create {
                name: TemplateName::parse("x").unwrap(),
                language: Language::parse("en").unwrap(),
                category: Category::Utility,
                components: vec![Component::Body { text: "Hi {{1}}".into() }],
                defaults: BTreeMap::from([("nope".to_string(), "v".to_string())]),
            })
            .unwrap_err();
        assert_eq!(err.code(), "validation_failed");
    }

    #[test]
    fn positional_default_given_by_alias_is_stored_under_its_key() {
        let e = Template::default()
            .decide(TemplateCommand::Create {
                name: TemplateName::parse("x").unwrap(),
                language: Language::parse("en").unwrap(),
                category: Category::Utility,
                components: vec![Component::Body { text: "Hi {{1}}".into() }],
                defaults: BTreeMap::from([("1".to_string(), "there".to_string())]),
            })
            .unwrap();
        assert_eq!(Template::replay(&e).defaults["body.1"], "there");
    }
}
