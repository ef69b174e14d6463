//! One batch of [`Store::apply`](crate::Store::apply): each write handed to the statements of
//! its table, then the batch's audit entries and the change rows, all in the caller's
//! transaction.

use std::collections::HashMap;

use crate::backend::Backend;
use crate::model::{NewAudit, Write};
use crate::sql::audit::insert_audit;
use crate::sql::bulk;
use crate::sql::leaks;
use crate::sql::outbox;
use crate::sql::policies;
use crate::sql::tokens::{
    change_credits, delete_token, enforce_owner_limit, insert_token, update_token,
};
use crate::sql::tx::{record_changes, Tx};
use crate::sql::users;
use crate::sql::webhooks;
use crate::store::Result;

/// One batch inside an open transaction: its writes, its audit entries and the change rows
/// that replicas and (on PostgreSQL) the other nodes follow. The caller decides what encloses it: its own transaction, or
/// a savepoint in the SQLite group committer's shared one.
/// Events in one batch beyond which it asks once per kind whether any endpoint takes them.
const MANY: usize = 16;

pub(crate) async fn execute_batch(
    tx: &mut Tx,
    backend: Backend,
    writes: &[Write],
    audit: &[NewAudit],
) -> Result<()> {
    let mut changed = Vec::with_capacity(writes.len());
    // A batch of many events (a bulk revoke) asks once per kind whether anyone listens; a
    // batch of a few does not pay for the question.
    let many_events = writes
        .iter()
        .filter(|w| matches!(w, Write::Emit(_)))
        .count()
        > MANY;
    let mut listened = HashMap::new();
    for w in writes {
        match w {
            Write::InsertToken(t) => {
                insert_token(tx, t).await?;
                changed.push((t.tenant_id.as_str(), t.hash));
            }
            Write::UpdateToken(t) => {
                update_token(tx, t).await?;
                changed.push((t.tenant_id.as_str(), t.hash));
            }
            Write::DeleteToken { tenant_id, id } => {
                if let Some(hash) = delete_token(tx, tenant_id, id).await? {
                    changed.push((tenant_id.as_str(), hash));
                }
            }
            Write::DeleteTokens { tenant_id, ids } => {
                for hash in bulk::delete_tokens(tx, tenant_id, ids).await? {
                    changed.push((tenant_id.as_str(), hash));
                }
            }
            Write::ChangeCredits {
                tenant_id,
                id,
                change,
                at,
            } => changed.push((
                tenant_id.as_str(),
                change_credits(tx, backend, tenant_id, id, *change, *at).await?,
            )),
            Write::InsertTenant { id, created_at } => {
                users::insert_tenant(tx, id, *created_at).await?
            }
            Write::InsertUser(u) => users::insert_user(tx, u).await?,
            Write::UpdateUser(u) => users::update_user(tx, u).await?,
            Write::DeleteUser { tenant_id, id } => users::delete_user(tx, tenant_id, id).await?,
            Write::InsertSession(session) => users::insert_session(tx, session).await?,
            Write::DeleteSession(hash) => users::delete_session(tx, hash).await?,
            Write::DeleteUserSessions { tenant_id, user_id } => {
                users::delete_user_sessions(tx, tenant_id, user_id).await?
            }
            Write::EnforceOwnerLimit {
                tenant_id,
                owner_id,
                max,
            } => enforce_owner_limit(tx, tenant_id, owner_id, *max).await?,
            Write::Emit(event) if many_events => {
                let key = (event.tenant_id.as_str(), event.event_type);
                let subscribed = match listened.get(&key) {
                    Some(s) => *s,
                    None => {
                        let s = bulk::has_subscriber(tx, key.0, key.1).await?;
                        listened.insert(key, s);
                        s
                    }
                };
                if subscribed {
                    outbox::enqueue(tx, event).await?
                }
            }
            Write::Emit(event) => outbox::enqueue(tx, event).await?,
            Write::SetTenantPolicy {
                tenant_id,
                policy,
                at,
            } => policies::set_tenant_policy(tx, tenant_id, policy, *at).await?,
            Write::InsertWebhook(e) => webhooks::insert_webhook(tx, e).await?,
            Write::UpdateWebhook {
                endpoint,
                resume_until_ms,
            } => webhooks::update_webhook(tx, endpoint, *resume_until_ms).await?,
            Write::DeleteWebhook { tenant_id, id } => {
                webhooks::delete_webhook(tx, tenant_id, id).await?
            }
            Write::RedeliverWebhook {
                tenant_id,
                endpoint_id,
                delivery_id,
                at,
            } => webhooks::redeliver_webhook(tx, tenant_id, endpoint_id, *delivery_id, *at).await?,
            Write::RecordLeak(leak) => leaks::insert_leak(tx, leak).await?,
        }
    }
    match audit {
        [one] => insert_audit(tx, one).await?,
        many => bulk::insert_audits(tx, many).await?,
    }
    record_changes(tx, backend, &changed).await
}
