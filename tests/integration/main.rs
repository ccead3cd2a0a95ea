//! Integration tests: the real `squall` binary on temporary content roots (issue 2 and up).

mod harness;
mod kube;
mod kv_support;
mod server;
mod servers;

mod api_edge;
mod aws_rds;
mod aws_sensor;
mod badinput;
mod bench;
mod consul_kv;
mod crash;
mod dbaas;
mod durability;
mod executions;
mod http;
mod k8s_actions;
mod k8s_watch;
mod load;
mod packs;
mod remote;
mod rules;
mod run;
mod secrets;
mod serve;
mod servers_smoke;
mod store;
mod validate;
mod vault_kv;
mod workflows;
