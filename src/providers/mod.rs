//! Verifiers for the providers people receive webhooks from, each exactly as
//! the provider signs.
