//! Labels, shared by conversations and contacts: trimmed, lowercase words an inbox filters by.

use crate::error::DomainError;
use crate::values::bounded_text;
use std::collections::BTreeSet;

/// Most labels one conversation or contact may carry, and the longest label.
pub const MAX_LABELS: usize = 20;
pub const MAX_LABEL_CHARS: usize = 50;

/// A set of labels, sorted.
pub type Labels = BTreeSet<String>;

/// A label as stored: trimmed, lowercase, 1 to [`MAX_LABEL_CHARS`] characters of letters, digits,
/// `-`, `_`, `:` or spaces.
pub fn label(input: &str) -> Result<String, DomainError> {
    let l = bounded_text("labels", input, MAX_LABEL_CHARS)?.to_lowercase();
    if !l.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ':' | ' ')) {
        return Err(DomainError::invalid("labels", format!("{l:?}: letters, digits, '-', '_', ':' and spaces only")));
    }
    Ok(l)
}

/// What adding `add` and removing `remove` (a label in both is removed) changes of `current`:
/// `(added, removed)`, each sorted, both empty when nothing changes. Refused when a label is not
/// valid or the result would carry more than [`MAX_LABELS`] (`per` names the holder in the error).
pub fn change(
    current: &Labels,
    add: &[String],
    remove: &[String],
    per: &str,
) -> Result<(Vec<String>, Vec<String>), DomainError> {
    let remove: Labels = remove.iter().map(|l| label(l)).collect::<Result<_, _>>()?;
    let add: Labels = add.iter().map(|l| label(l)).collect::<Result<_, _>>()?;
    let added: Vec<String> = add.difference(&remove).filter(|l| !current.contains(*l)).cloned().collect();
    let removed: Vec<String> = remove.iter().filter(|l| current.contains(*l)).cloned().collect();
    if current.len() + added.len() - removed.len() > MAX_LABELS {
        return Err(DomainError::invalid("labels", format!("at most {MAX_LABELS} per {per}")));
    }
    Ok((added, removed))
}

/// Folds a change into `labels`.
pub fn apply(labels: &mut Labels, added: &[String], removed: &[String]) {
    labels.extend(added.iter().cloned());
    for l in removed {
        labels.remove(l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_are_normalised_added_and_removed_once_and_bounded() {
        let mut labels = Labels::new();
        let (added, removed) = change(&labels, &strings(&[" VIP ", "vip", "order:123"]), &[], "contact").unwrap();
        assert_eq!((added.clone(), removed.clone()), (strings(&["order:123", "vip"]), vec![]));
        apply(&mut labels, &added, &removed);
        assert_eq!(change(&labels, &strings(&["vip"]), &strings(&["nope"]), "contact").unwrap(), (vec![], vec![]));
        assert_eq!(
            change(&labels, &strings(&["x"]), &strings(&["X", "VIP"]), "contact").unwrap(),
            (vec![], strings(&["vip"])),
            "a label in both is removed"
        );
        for bad in ["a\u{0}b", "<script>", "", "  "] {
            assert!(change(&labels, &strings(&[bad]), &[], "contact").is_err(), "{bad:?}");
        }
        assert!(label(&"x".repeat(MAX_LABEL_CHARS + 1)).is_err());
        let many: Vec<String> = (0..MAX_LABELS - labels.len()).map(|i| format!("l{i}")).collect();
        assert!(change(&labels, &many, &[], "contact").is_ok(), "exactly the maximum");
        let err = change(&labels, &[many, strings(&["one more"])].concat(), &[], "contact").unwrap_err();
        assert_eq!(err.code(), "validation_failed");
    }
}
