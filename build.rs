//! Turns the test servers' environment variables into cfgs, so tests that
//! need PostgreSQL, Redis, NATS or RabbitMQ are reported as ignored (with the variable to
//! set) instead of passing silently when the server is not configured.

fn main() {
    for (var, cfg) in [
        ("TOWER_WEBHOOKS_PG_URL", "tower_webhooks_pg"),
        ("TOWER_WEBHOOKS_REDIS_URL", "tower_webhooks_redis"),
        ("TOWER_WEBHOOKS_NATS_URL", "tower_webhooks_nats"),
        ("TOWER_WEBHOOKS_AMQP_URL", "tower_webhooks_amqp"),
    ] {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if std::env::var_os(var).is_some_and(|value| !value.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
