// sqlx::migrate! embeds the migrations at compile time; without this, a migration added
// without touching any Rust file of the crate would not be built in (sqlx's advice).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
