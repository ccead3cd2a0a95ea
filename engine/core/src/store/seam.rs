//! The store seam: what the rest of Squall asks of the place where everything it must
//! remember lives. [`SledStore`] (embedded sled, the default) implements it; a distributed
//! backend implements the same trait, and rules, executions and workflows do not change.
//!
//! Writes go through [`Batch`]: everything one step produces (a record, its index
//! entries, its audit entry, the enforcement and trigger it settles) is one commit, made
//! durable with [`Store::durable`] (group commit: concurrent callers share one flush).

use super::workflows::PassEntries;
use super::{
    Batch, CheckReport, FinishedHook, ListFilter, Listing, ProcessRecord, SledStore, StoreError,
};
use crate::model::Status;
use crate::model::{ChildRef, Enforcement, Execution, Json, OutputChunk, TriggerInstance};
use async_trait::async_trait;
use std::path::Path;

/// Everything Squall keeps: executions and their state, triggers, enforcements, the audit
/// trail, sensor checkpoints and the processes it started.
#[async_trait]
pub trait Store: Send + Sync {
    /// Call `hook` for every execution that becomes terminal, right after the commit that
    /// records it (metrics, the audit trail's echo on stdout). Set once; later calls are
    /// ignored.
    fn on_finished(&self, hook: FinishedHook);

    /// The data directory.
    fn dir(&self) -> &Path;

    /// Apply `batch` atomically; returns a ticket for [`Store::durable`].
    fn commit(&self, batch: Batch) -> Result<u64, StoreError>;

    /// Write one execution record (and its index entries).
    fn put_execution(&self, prev: Option<Status>, e: &Execution) -> Result<u64, StoreError>;

    /// Add the encrypted full parameters of `id` to `batch`.
    fn seal_params(&self, batch: &mut Batch, id: &str, params: &Json);

    /// The full parameters of `id` when they were sealed (they held secrets).
    fn sealed_params(&self, id: &str) -> Result<Option<Json>, StoreError>;

    /// Add the encrypted full result of `id` to `batch` (a workflow child whose result held
    /// secrets: the record shows it masked, a resumed workflow needs it in clear).
    fn seal_result(&self, batch: &mut Batch, id: &str, result: &Json);

    /// The full result of `id` when it was sealed (it held secrets).
    fn sealed_result(&self, id: &str) -> Result<Option<Json>, StoreError>;

    /// The execution `id`, with its children (for a workflow) in run order.
    fn get_execution(&self, id: &str) -> Result<Option<Execution>, StoreError>;

    /// The children of workflow execution `id` in run order, each with the status of its
    /// own record.
    fn children(&self, id: &str) -> Result<Vec<ChildRef>, StoreError>;

    /// The execution a rule already requested for a trigger instance (so that evaluating a
    /// trigger again after a crash does not run its actions twice).
    fn execution_for(
        &self,
        trigger_instance: &str,
        rule: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Executions matching `filter`, newest first. Records that cannot be read are left
    /// out and named in [`Listing::skipped`].
    fn list_executions(&self, filter: &ListFilter) -> Result<Listing<Execution>, StoreError>;

    /// Executions not in a terminal status, oldest first (for crash recovery). Records
    /// that cannot be read are left out and named in [`Listing::skipped`].
    fn unfinished(&self) -> Result<Listing<Execution>, StoreError>;

    /// SledStore output chunk number `seq` of execution `id` (already masked).
    fn put_output(&self, id: &str, seq: u64, chunk: &OutputChunk) -> Result<(), StoreError>;

    /// Output chunks of `id` from number `from` on, in order, with their numbers.
    fn output(&self, id: &str, from: u64) -> Result<Vec<(u64, OutputChunk)>, StoreError>;

    /// Make every write committed before ticket `ticket` durable. Concurrent callers share
    /// one flush (group commit).
    async fn durable(&self, ticket: u64) -> Result<(), StoreError>;

    /// Disk flushes done so far (each covers every write committed before it).
    fn flush_count(&self) -> u64;

    /// Make everything written so far durable.
    async fn flush(&self) -> Result<(), StoreError>;

    /// The checkpoint a sensor saved (its own format), if any.
    fn sensor_checkpoint(&self, sensor: &str) -> Result<Option<Json>, StoreError>;

    /// Save a sensor's checkpoint and make it durable.
    async fn put_sensor_checkpoint(&self, sensor: &str, value: &Json) -> Result<(), StoreError>;

    /// Remove a sensor's checkpoint (`squall sensor reset`): it starts afresh next time.
    async fn remove_sensor_checkpoint(&self, sensor: &str) -> Result<bool, StoreError>;

    /// Write a trigger instance; returns a durability ticket. Refused (nothing written)
    /// when the document would nest deeper than [`crate::limits::MAX_STORED_DEPTH`]: it
    /// could not be read back.
    fn put_trigger(&self, t: &TriggerInstance) -> Result<u64, StoreError>;

    /// Remove trigger instance `id` (one that was never acknowledged to its sender).
    fn delete_trigger(&self, id: &str) -> Result<(), StoreError>;

    /// Remove audit entry `id` (one written with a trigger that could not be made durable).
    fn delete_audit(&self, id: &str) -> Result<(), StoreError>;

    /// The trigger instance `id`.
    fn get_trigger(&self, id: &str) -> Result<Option<TriggerInstance>, StoreError>;

    /// Trigger instances, newest first, optionally of one type; at most `limit` (`0`: all).
    /// Records that cannot be read are left out and named in [`Listing::skipped`].
    fn list_triggers(
        &self,
        trigger: Option<&str>,
        limit: usize,
    ) -> Result<Listing<TriggerInstance>, StoreError>;

    /// Trigger instances not yet evaluated, oldest first (for recovery). Records that
    /// cannot be read are left out and named in [`Listing::skipped`].
    fn pending_triggers(&self) -> Result<Listing<TriggerInstance>, StoreError>;

    /// Write an enforcement; returns a durability ticket.
    fn put_enforcement(&self, e: &Enforcement) -> Result<u64, StoreError>;

    /// The enforcement `id`.
    fn get_enforcement(&self, id: &str) -> Result<Option<Enforcement>, StoreError>;

    /// Append an audit entry (already masked); returns a durability ticket.
    fn put_audit(&self, id: &str, entry: &Json) -> Result<u64, StoreError>;

    /// Audit entries, newest first; at most `limit` (`0`: all). Entries that cannot be read
    /// are left out and named in [`Listing::skipped`].
    fn list_audit(&self, limit: usize) -> Result<Listing<Json>, StoreError>;

    /// The audit listing of [`Store::list_audit`] as the bytes of one JSON array, built
    /// from the stored entries as they are (each checked to be JSON, not parsed into a
    /// document tree): a long listing (`limit` `0`) holds about its own size in memory,
    /// not several times it. Also returns the keys of entries left out (unreadable).
    fn list_audit_json(&self, limit: usize) -> Result<(Vec<u8>, Vec<String>), StoreError>;

    /// Add the state of workflow `id` to `batch`, encrypted when it holds a known secret:
    /// everything but its `tasks`, which [`Store::workflow_task`] writes one by one.
    fn workflow_state(&self, batch: &mut Batch, id: &str, state: &Json);

    /// Add the entry of `task` in the state of workflow `id` (its `tasks.<task>`) to
    /// `batch`, encrypted when it holds a known secret.
    fn workflow_task(&self, batch: &mut Batch, id: &str, task: &str, entry: &Json);

    /// The stored state of workflow `id`, its task entries gathered under `tasks`.
    fn get_workflow_state(&self, id: &str) -> Result<Option<Json>, StoreError>;

    /// Add the items of the `with` task run as `pass` of workflow `id` to `batch`.
    fn workflow_items(&self, batch: &mut Batch, id: &str, pass: u64, items: &Json);

    /// Add how item `unit` of pass `pass` of workflow `id` ended to `batch`.
    fn workflow_unit(&self, batch: &mut Batch, id: &str, pass: u64, unit: usize, outcome: &Json);

    /// Remove the items and item entries of pass `pass` (with `units` items) from the store
    /// with `batch` (the task has ended; they are folded into its task entry).
    fn drop_workflow_pass(&self, batch: &mut Batch, id: &str, pass: u64, units: usize);

    /// The items and the finished items (by index) of pass `pass` of workflow `id`.
    fn workflow_pass(&self, id: &str, pass: u64) -> Result<PassEntries, StoreError>;

    /// Record a started process; returns a ticket for [`Store::durable`].
    fn record_process(&self, r: &ProcessRecord) -> Result<u64, StoreError>;

    /// Forget a process (it has ended, and its group with it). Need not be durable: a
    /// record left by a crash names a process that is gone, which recovery checks.
    fn forget_process(&self, execution: &str, pid: i32) -> Result<u64, StoreError>;

    /// Every recorded process, oldest execution first. A record that does not decode is
    /// returned as an error in its place (recovery reports it and carries on).
    fn recorded_processes(&self) -> Result<Vec<Result<ProcessRecord, StoreError>>, StoreError>;

    /// Remove every process record (after recovery has ended them all).
    fn forget_all_processes(&self) -> Result<u64, StoreError>;

    /// Read every record of every tree and report those that do not decode (nothing is
    /// changed). Encrypted entries (`p:`, `r:`, sealed workflow state) are opened with the
    /// key, so a wrong key file shows up here too.
    fn check(&self) -> Result<CheckReport, StoreError>;
}

#[async_trait]
impl Store for SledStore {
    fn on_finished(&self, hook: FinishedHook) {
        SledStore::on_finished(self, hook)
    }

    fn dir(&self) -> &Path {
        SledStore::dir(self)
    }

    fn commit(&self, batch: Batch) -> Result<u64, StoreError> {
        SledStore::commit(self, batch)
    }

    fn put_execution(&self, prev: Option<Status>, e: &Execution) -> Result<u64, StoreError> {
        SledStore::put_execution(self, prev, e)
    }

    fn seal_params(&self, batch: &mut Batch, id: &str, params: &Json) {
        SledStore::seal_params(self, batch, id, params)
    }

    fn sealed_params(&self, id: &str) -> Result<Option<Json>, StoreError> {
        SledStore::sealed_params(self, id)
    }

    fn seal_result(&self, batch: &mut Batch, id: &str, result: &Json) {
        SledStore::seal_result(self, batch, id, result)
    }

    fn sealed_result(&self, id: &str) -> Result<Option<Json>, StoreError> {
        SledStore::sealed_result(self, id)
    }

    fn get_execution(&self, id: &str) -> Result<Option<Execution>, StoreError> {
        SledStore::get_execution(self, id)
    }

    fn children(&self, id: &str) -> Result<Vec<ChildRef>, StoreError> {
        SledStore::children(self, id)
    }

    fn execution_for(
        &self,
        trigger_instance: &str,
        rule: &str,
    ) -> Result<Option<String>, StoreError> {
        SledStore::execution_for(self, trigger_instance, rule)
    }

    fn list_executions(&self, filter: &ListFilter) -> Result<Listing<Execution>, StoreError> {
        SledStore::list_executions(self, filter)
    }

    fn unfinished(&self) -> Result<Listing<Execution>, StoreError> {
        SledStore::unfinished(self)
    }

    fn put_output(&self, id: &str, seq: u64, chunk: &OutputChunk) -> Result<(), StoreError> {
        SledStore::put_output(self, id, seq, chunk)
    }

    fn output(&self, id: &str, from: u64) -> Result<Vec<(u64, OutputChunk)>, StoreError> {
        SledStore::output(self, id, from)
    }

    async fn durable(&self, ticket: u64) -> Result<(), StoreError> {
        SledStore::durable(self, ticket).await
    }

    fn flush_count(&self) -> u64 {
        SledStore::flush_count(self)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        SledStore::flush(self).await
    }

    fn sensor_checkpoint(&self, sensor: &str) -> Result<Option<Json>, StoreError> {
        SledStore::sensor_checkpoint(self, sensor)
    }

    async fn put_sensor_checkpoint(&self, sensor: &str, value: &Json) -> Result<(), StoreError> {
        SledStore::put_sensor_checkpoint(self, sensor, value).await
    }

    async fn remove_sensor_checkpoint(&self, sensor: &str) -> Result<bool, StoreError> {
        SledStore::remove_sensor_checkpoint(self, sensor).await
    }

    fn put_trigger(&self, t: &TriggerInstance) -> Result<u64, StoreError> {
        SledStore::put_trigger(self, t)
    }

    fn delete_trigger(&self, id: &str) -> Result<(), StoreError> {
        SledStore::delete_trigger(self, id)
    }

    fn delete_audit(&self, id: &str) -> Result<(), StoreError> {
        SledStore::delete_audit(self, id)
    }

    fn get_trigger(&self, id: &str) -> Result<Option<TriggerInstance>, StoreError> {
        SledStore::get_trigger(self, id)
    }

    fn list_triggers(
        &self,
        trigger: Option<&str>,
        limit: usize,
    ) -> Result<Listing<TriggerInstance>, StoreError> {
        SledStore::list_triggers(self, trigger, limit)
    }

    fn pending_triggers(&self) -> Result<Listing<TriggerInstance>, StoreError> {
        SledStore::pending_triggers(self)
    }

    fn put_enforcement(&self, e: &Enforcement) -> Result<u64, StoreError> {
        SledStore::put_enforcement(self, e)
    }

    fn get_enforcement(&self, id: &str) -> Result<Option<Enforcement>, StoreError> {
        SledStore::get_enforcement(self, id)
    }

    fn put_audit(&self, id: &str, entry: &Json) -> Result<u64, StoreError> {
        SledStore::put_audit(self, id, entry)
    }

    fn list_audit(&self, limit: usize) -> Result<Listing<Json>, StoreError> {
        SledStore::list_audit(self, limit)
    }

    fn list_audit_json(&self, limit: usize) -> Result<(Vec<u8>, Vec<String>), StoreError> {
        SledStore::list_audit_json(self, limit)
    }

    fn workflow_state(&self, batch: &mut Batch, id: &str, state: &Json) {
        SledStore::workflow_state(self, batch, id, state)
    }

    fn workflow_task(&self, batch: &mut Batch, id: &str, task: &str, entry: &Json) {
        SledStore::workflow_task(self, batch, id, task, entry)
    }

    fn get_workflow_state(&self, id: &str) -> Result<Option<Json>, StoreError> {
        SledStore::get_workflow_state(self, id)
    }

    fn workflow_items(&self, batch: &mut Batch, id: &str, pass: u64, items: &Json) {
        SledStore::workflow_items(self, batch, id, pass, items)
    }

    fn workflow_unit(&self, batch: &mut Batch, id: &str, pass: u64, unit: usize, outcome: &Json) {
        SledStore::workflow_unit(self, batch, id, pass, unit, outcome)
    }

    fn drop_workflow_pass(&self, batch: &mut Batch, id: &str, pass: u64, units: usize) {
        SledStore::drop_workflow_pass(self, batch, id, pass, units)
    }

    fn workflow_pass(&self, id: &str, pass: u64) -> Result<PassEntries, StoreError> {
        SledStore::workflow_pass(self, id, pass)
    }

    fn record_process(&self, r: &ProcessRecord) -> Result<u64, StoreError> {
        SledStore::record_process(self, r)
    }

    fn forget_process(&self, execution: &str, pid: i32) -> Result<u64, StoreError> {
        SledStore::forget_process(self, execution, pid)
    }

    fn recorded_processes(&self) -> Result<Vec<Result<ProcessRecord, StoreError>>, StoreError> {
        SledStore::recorded_processes(self)
    }

    fn forget_all_processes(&self) -> Result<u64, StoreError> {
        SledStore::forget_all_processes(self)
    }

    fn check(&self) -> Result<CheckReport, StoreError> {
        SledStore::check(self)
    }
}
