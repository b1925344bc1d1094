//! The two text templates of a commit status, its description (from a file) and its context
//! (GitLab calls it the name; inline in the config), registered and rendered the same way for
//! GitHub and GitLab.

use std::path::Path;

use crate::event::RunEvent;
use crate::failure::DeliveryError;
use crate::integrations::text::one_line;
use crate::render::{Format, TemplateError, Templates, template_path, variables};

/// The status templates of the integration called `integration`.
#[derive(Debug, Clone, Copy)]
pub struct StatusTexts<'a> {
    pub integration: &'a str,
}

impl StatusTexts<'_> {
    fn names(&self) -> (String, String) {
        let name = self.integration;
        (format!("{name}/description"), format!("{name}/context"))
    }

    /// Compiles the description template (`file`, else `default` under `dir`) and the inline
    /// `context` template, both checked against the sample events.
    pub fn register(
        &self,
        templates: &mut Templates,
        dir: &Path,
        file: Option<&Path>,
        default: &str,
        context: &str,
    ) -> Result<(), TemplateError> {
        let (description_name, context_name) = self.names();
        templates.add_file(
            Format::TEXT,
            &description_name,
            &template_path(dir, file, default),
        )?;
        let origin = format!("integration `{}`: context", self.integration);
        templates.add(Format::TEXT, &context_name, &origin, context)
    }

    /// The description and the context for `event`, each on one line.
    pub fn render(
        &self,
        templates: &Templates,
        event: &RunEvent,
    ) -> Result<(String, String), DeliveryError> {
        let values = variables(event);
        let render = |name: &str| {
            templates
                .render(Format::TEXT, name, values)
                .map(|text| one_line(&text))
                .map_err(|err| DeliveryError::permanent(err.to_string()))
        };
        let (description, context) = self.names();
        Ok((render(&description)?, render(&context)?))
    }
}
