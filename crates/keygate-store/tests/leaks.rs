//! Reported leaks against the real databases (a SQLite file and a fresh PostgreSQL database,
//! `KEYGATE_TEST_DATABASE_URL`; unreachable is a failure, never a skip): a leak is recorded once
//! with the batch that acts on it, found by hash after its token is gone, and counted on later
//! reports; accepted report signatures keep their answer, once, and age out.

mod common;
use common::{on_both_backends, service_token, Db};

use keygate_core::OnLeak;
use keygate_store::*;
use time::Duration;

fn leak(rec: &TokenRecord, at: time::OffsetDateTime) -> NewLeak {
    NewLeak {
        tenant_id: rec.tenant_id.clone(),
        token_id: rec.id.clone(),
        hash: rec.hash,
        reporter: "github".into(),
        location: Some("https://github.com/o/r/blob/x/.env".into()),
        action: OnLeak::Revoke,
        at,
    }
}

async fn a_leak_is_recorded_once_and_outlives_its_token(db: Db) {
    let s = &db.store;
    let rec = service_token();
    s.apply(&[Write::InsertToken(rec.clone())], &[])
        .await
        .unwrap();
    assert_eq!(s.leak_by_hash(&rec.hash).await.unwrap(), None);
    assert!(
        !s.count_leak_report(&rec.hash, now()).await.unwrap(),
        "nothing to count yet"
    );

    let at = now();
    let revoke = Write::DeleteToken {
        tenant_id: rec.tenant_id.clone(),
        id: rec.id.clone(),
    };
    s.apply(&[Write::RecordLeak(leak(&rec, at)), revoke], &[])
        .await
        .unwrap();
    let recorded = s.leak_by_hash(&rec.hash).await.unwrap().unwrap();
    assert_eq!(
        recorded,
        LeakRecord {
            tenant_id: rec.tenant_id.clone(),
            token_id: rec.id.clone(),
            reporter: "github".into(),
            location: Some("https://github.com/o/r/blob/x/.env".into()),
            action: OnLeak::Revoke,
            first_reported_at: at,
            last_reported_at: at,
            reports: 1,
        }
    );
    assert!(s.token_by_hash(&rec.hash).await.unwrap().is_none());

    // A second first report (a race) fails its whole batch: nothing of it is written.
    let bystander = service_token();
    let again = s
        .apply(
            &[
                Write::InsertToken(bystander.clone()),
                Write::RecordLeak(leak(&rec, at)),
            ],
            &[],
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert!(s.token_by_hash(&bystander.hash).await.unwrap().is_none());

    // Later reports count; an earlier time (a late retry) does not move the last report back.
    let later = at + Duration::minutes(5);
    assert!(s.count_leak_report(&rec.hash, later).await.unwrap());
    assert!(s.count_leak_report(&rec.hash, at).await.unwrap());
    let counted = s.leak_by_hash(&rec.hash).await.unwrap().unwrap();
    assert_eq!((counted.reports, counted.last_reported_at), (3, later));
    assert_eq!(counted.first_reported_at, at);
}

async fn an_accepted_signature_keeps_its_answer_once_and_ages_out(db: Db) {
    let s = &db.store;
    let sig = [7u8; 64];
    let at = now();
    assert_eq!(s.leak_report_answer(&sig).await.unwrap(), None);
    assert!(s.keep_leak_report(&sig, "k1", "[1]", at).await.unwrap());
    assert!(
        !s.keep_leak_report(&sig, "k1", "[2]", at).await.unwrap(),
        "kept once"
    );
    assert_eq!(
        s.leak_report_answer(&sig).await.unwrap().as_deref(),
        Some("[1]")
    );

    // Keeping another one past the retention forgets the first.
    let much_later = at + Duration::milliseconds(SIGNATURE_RETENTION_MS + 1);
    assert!(s
        .keep_leak_report(&[8u8; 64], "k1", "[]", much_later)
        .await
        .unwrap());
    assert_eq!(s.leak_report_answer(&sig).await.unwrap(), None);
    assert!(s.leak_report_answer(&[8u8; 64]).await.unwrap().is_some());
}

on_both_backends!(
    a_leak_is_recorded_once_and_outlives_its_token,
    an_accepted_signature_keeps_its_answer_once_and_ages_out,
);
