//! Black-box tests: the real application on a random port, spoken to over HTTP.

mod helpers;

mod auth;
mod cli;
pub mod crash;
mod create;
mod delete;
mod edges;
mod ferretdb;
mod hostile;
mod list;
mod mongo_ops;
mod openapi;
mod parity;
mod persistence;
mod routes;
mod search;
mod signin;
mod update;
