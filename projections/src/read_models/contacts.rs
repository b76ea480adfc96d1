//! `rm_contacts`: contacts with their attributes, labels, opt-out and group membership.

use crate::delta::Change;
use crate::projector::{Applied, Projector};
use async_trait::async_trait;
use blazz_domain::contact::ContactEvent;
use blazz_domain::group::GroupEvent;
use blazz_domain::DomainEvent;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug)]
pub struct Contacts;

fn is_created(a: &Applied) -> bool {
    matches!(a.event, DomainEvent::Contact(ContactEvent::Created { .. }))
}

/// A run of created contacts (imports, replays): one multi-row insert.
async fn insert_created(conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
    let (mut ws, mut ids, mut phones, mut users, mut names, mut attrs, mut at) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut changes = Vec::with_capacity(run.len());
    for a in run {
        let DomainEvent::Contact(ContactEvent::Created { phone, user_id, name, attributes }) = &a.event else {
            continue;
        };
        changes.push(vec![Change::upsert(
            "contact",
            a.aggregate_id(),
            json!({ "phone": phone, "user_id": user_id, "name": name, "attributes": attributes, "opted_out": false }),
        )]);
        ws.push(a.record.workspace_id);
        ids.push(a.aggregate_id());
        phones.push(phone.as_ref().map(|p| p.as_str().to_owned()));
        users.push(user_id.as_ref().map(|u| u.as_str().to_owned()));
        names.push(name.clone());
        attrs.push(json!(attributes));
        at.push(a.record.recorded_at);
    }
    sqlx::query(
        "INSERT INTO rm_contacts (workspace_id, contact_id, phone, user_id, name, attributes, created_at, updated_at)
         SELECT w, c, p, u, n, a, t, t
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[]) AS x(w, c, p, u, n, a, t)
         ON CONFLICT DO NOTHING",
    )
    .bind(&ws)
    .bind(&ids)
    .bind(&phones)
    .bind(&users)
    .bind(&names)
    .bind(&attrs)
    .bind(&at)
    .execute(conn)
    .await?;
    Ok(changes)
}

#[async_trait]
impl Projector for Contacts {
    fn name(&self) -> &'static str {
        "contacts"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_contacts"]
    }

    fn batchable(&self, event: &Applied) -> bool {
        is_created(event)
    }

    async fn apply_run(&self, conn: &mut PgConnection, run: &[&Applied]) -> Result<Vec<Vec<Change>>, sqlx::Error> {
        insert_created(conn, run).await
    }

    async fn apply(&self, conn: &mut PgConnection, a: &Applied) -> Result<Vec<Change>, sqlx::Error> {
        let (ws, id, at) = (a.record.workspace_id, a.aggregate_id(), a.record.recorded_at);
        let update = |set: &'static str| {
            format!("UPDATE rm_contacts SET {set}, updated_at = $3 WHERE workspace_id = $1 AND contact_id = $2")
        };
        let change = |changed| Ok(vec![Change::upsert("contact", id, changed)]);
        match &a.event {
            DomainEvent::Contact(e) => match e {
                // Creations go through the set-based path, alone or in a run.
                ContactEvent::Created { .. } => Ok(insert_created(conn, &[a]).await?.pop().unwrap_or_default()),
                ContactEvent::Renamed { name } => {
                    sqlx::query(&update("name = $4")).bind(ws).bind(id).bind(at).bind(name).execute(conn).await?;
                    change(json!({ "name": name }))
                }
                ContactEvent::PhoneChanged { phone } => {
                    sqlx::query(&update("phone = $4"))
                        .bind(ws)
                        .bind(id)
                        .bind(at)
                        .bind(phone.as_ref().map(|p| p.as_str()))
                        .execute(conn)
                        .await?;
                    change(json!({ "phone": phone }))
                }
                ContactEvent::UserIdLinked { user_id } => {
                    sqlx::query(&update("user_id = $4"))
                        .bind(ws)
                        .bind(id)
                        .bind(at)
                        .bind(user_id.as_ref().map(|u| u.as_str()))
                        .execute(conn)
                        .await?;
                    change(json!({ "user_id": user_id }))
                }
                ContactEvent::AttributesChanged { set, removed } => {
                    sqlx::query(&update("attributes = (attributes - $4::text[]) || $5"))
                        .bind(ws)
                        .bind(id)
                        .bind(at)
                        .bind(removed)
                        .bind(json!(set))
                        .execute(conn)
                        .await?;
                    change(json!({ "attributes_set": set, "attributes_removed": removed }))
                }
                ContactEvent::OptedOut { reason, source, .. } => {
                    let source = super::tag(source);
                    sqlx::query(&update("opted_out = true, opt_out_reason = $4, opt_out_source = $5"))
                        .bind(ws)
                        .bind(id)
                        .bind(at)
                        .bind(reason)
                        .bind(&source)
                        .execute(conn)
                        .await?;
                    change(json!({ "opted_out": true, "opt_out_reason": reason, "opt_out_source": source }))
                }
                ContactEvent::OptedIn { .. } => {
                    sqlx::query(&update("opted_out = false, opt_out_reason = NULL, opt_out_source = NULL"))
                        .bind(ws)
                        .bind(id)
                        .bind(at)
                        .execute(conn)
                        .await?;
                    change(json!({ "opted_out": false }))
                }
                ContactEvent::LabelsChanged { added, removed } => {
                    let labels: Option<(Vec<String>,)> = sqlx::query_as(&format!(
                        "UPDATE rm_contacts SET labels = {}, updated_at = $3
                         WHERE workspace_id = $1 AND contact_id = $2 RETURNING labels",
                        super::labels_after(4, 5)
                    ))
                    .bind(ws)
                    .bind(id)
                    .bind(at)
                    .bind(added)
                    .bind(removed)
                    .fetch_optional(conn)
                    .await?;
                    change(json!({ "labels": labels.map(|l| l.0) }))
                }
                // An erased contact is gone from the read model like a deleted one.
                ContactEvent::Deleted { .. } | ContactEvent::Erased { .. } => {
                    sqlx::query("DELETE FROM rm_contacts WHERE workspace_id = $1 AND contact_id = $2")
                        .bind(ws)
                        .bind(id)
                        .execute(conn)
                        .await?;
                    Ok(vec![Change::delete("contact", id)])
                }
            },
            // Membership is listed on the contact; the group's delta tells live clients about it.
            DomainEvent::Group(
                e @ (GroupEvent::MembersAdded { contacts } | GroupEvent::MembersRemoved { contacts }),
            ) => {
                let sql = if matches!(e, GroupEvent::MembersAdded { .. }) {
                    "UPDATE rm_contacts SET group_ids = array_append(group_ids, $2), updated_at = $4
                     WHERE workspace_id = $1 AND contact_id = ANY($3) AND NOT ($2 = ANY(group_ids))"
                } else {
                    "UPDATE rm_contacts SET group_ids = array_remove(group_ids, $2), updated_at = $4
                     WHERE workspace_id = $1 AND contact_id = ANY($3)"
                };
                let ids: Vec<Uuid> = contacts.iter().map(|c| c.as_uuid()).collect();
                sqlx::query(sql).bind(ws).bind(id).bind(&ids).bind(at).execute(conn).await?;
                Ok(vec![])
            }
            _ => Ok(vec![]),
        }
    }
}
