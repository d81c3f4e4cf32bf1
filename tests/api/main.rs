//! Black-box tests: the real application on a random port, spoken to over HTTP.

mod helpers;

mod abandoned;
mod auth;
mod auth_cache;
mod bulk;
mod cli;
pub mod crash;
mod create;
mod delete;
mod docs_browser;
mod edges;
mod error_bodies;
mod ferretdb;
mod hostile;
mod lifecycle;
mod list;
mod mongo_ops;
mod openapi;
mod parity;
mod persistence;
mod routes;
mod search;
mod security;
mod sets;
mod signin;
mod update;
