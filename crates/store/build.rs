fn main() {
    // The migrations are embedded by `sqlx::migrate!`; a new one must rebuild this crate.
    println!("cargo:rerun-if-changed=../../migrations");
}
