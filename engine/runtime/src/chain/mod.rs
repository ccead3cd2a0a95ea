//! The action-chain interpreter: runs tasks as child executions, publishes, follows
//! transitions, retries, fans out `with` items, and commits its [`ChainState`] at every
//! step so that it can be resumed after a crash.

use crate::executions::{Engine, EngineError, Interpreter, Request};
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{json, Map};
use squall_core::expr::Vars;
use squall_core::model::{Execution, Json, Status};
use squall_core::runner::ActionOutcome;
use squall_core::store::Batch;
use squall_core::workflow::state::{ChainState, Cursor, LastTask, UnitOutcome};
use squall_core::workflow::{Next, Task, Workflow};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod persist;
mod recover;
use recover::Recovered;

type Finished = (Execution, ActionOutcome);

/// The action-chain interpreter, the engine's [`Interpreter`] of workflows.
pub struct ActionChain;

impl Interpreter for ActionChain {
    fn run(
        &self,
        engine: Arc<Engine>,
        execution: Execution,
        wf: Arc<Workflow>,
        parameters: Json,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Finished> + Send>> {
        run(engine, execution, wf, parameters, cancel)
    }
}

/// Run (or resume) the workflow `wf` for `execution`. Boxed because workflows nest.
fn run(
    engine: Arc<Engine>,
    execution: Execution,
    wf: Arc<Workflow>,
    params: Json,
    cancel: CancellationToken,
) -> Pin<Box<dyn Future<Output = Finished> + Send>> {
    Box::pin(async move {
        let mut chain = Chain {
            engine,
            wf,
            execution,
            state: ChainState::default(),
            changed_tasks: Vec::new(),
            changed_units: Vec::new(),
            items_changed: false,
            retired: Vec::new(),
            cancel,
        };
        match chain.drive(params).await {
            Ok(outcome) => (chain.execution, outcome),
            Err(e) => {
                let msg = format!("workflow state could not be read or saved: {e}");
                (chain.execution, ActionOutcome::failed(msg, Json::Null))
            }
        }
    })
}

struct Chain {
    engine: Arc<Engine>,
    wf: Arc<Workflow>,
    execution: Execution,
    state: ChainState,
    /// Tasks whose `tasks.<name>` entry changed since the state was last staged.
    changed_tasks: Vec<String>,
    /// Units of the cursor that finished since the state was last staged.
    changed_units: Vec<usize>,
    /// The cursor's items were rendered since the state was last staged.
    items_changed: bool,
    /// Passes (with their unit counts) whose entries are to be removed.
    retired: Vec<(u64, usize)>,
    cancel: CancellationToken,
}

/// The result of one task, all units together.
struct TaskOutcome {
    status: Status,
    result: Json,
    error: Option<String>,
    /// The workflow must end now whatever the transitions say (its bound was exceeded).
    fatal: bool,
}

impl Chain {
    async fn drive(&mut self, params: Json) -> Result<ActionOutcome, EngineError> {
        match self.engine.store().get_workflow_state(&self.execution.id)? {
            Some(saved) => {
                // A state that cannot be read must fail the workflow: taking a default
                // (no cursor) would report it finished without running its tasks.
                self.state = match serde_json::from_value(saved) {
                    Ok(state) => state,
                    Err(e) => {
                        let msg = format!(
                            "the saved state of this workflow (store key w:{}) cannot be read: {e}; \
                             no task was run or skipped after the restart. Run the workflow again \
                             once you have checked which of its tasks took effect",
                            self.execution.id
                        );
                        return Ok(ActionOutcome::failed(msg, Json::Null));
                    }
                };
                // Written again as entries (state saved by an older version held them inline).
                self.changed_tasks = self.state.tasks.keys().cloned().collect();
                self.load_pass()?;
                self.state
                    .secrets
                    .iter()
                    .for_each(|s| squall_core::secrets::register(s));
            }
            None => {
                let mut scope = Map::new();
                if let Json::Object(p) = params {
                    scope.extend(p);
                }
                for (k, v) in &self.wf.spec.vars {
                    scope.insert(k.clone(), v.clone());
                }
                self.state.scope = scope;
                let start = self.wf.tasks[self.wf.start].name.clone();
                self.move_to(Some((&start, 1)));
                self.save().await?;
            }
        }
        while let Some(name) = self.state.cursor.as_ref().map(|c| c.task.clone()) {
            if self.cancel.is_cancelled() {
                return Ok(ActionOutcome::canceled(self.default_output()));
            }
            let Some(idx) = self.wf.task_index(&name) else {
                return Ok(ActionOutcome::failed(
                    format!(
                        "saved state points at task `{name}`, which this workflow no longer has"
                    ),
                    Json::Null,
                ));
            };
            let outcome = self.run_task(idx).await?;
            if outcome.fatal {
                self.move_to(None);
                self.save().await?;
                let msg = outcome.error.unwrap_or_default();
                return Ok(ActionOutcome::failed(msg, self.default_output()));
            }
            if outcome.status == Status::Canceled {
                self.save().await?;
                return Ok(ActionOutcome::canceled(self.default_output()));
            }
            if let Some(fatal) = self.after_task(idx, outcome).await? {
                return Ok(fatal);
            }
        }
        Ok(self.finish())
    }

    /// Run every unit of the task at `idx` (one, or one per item), `concurrency` at a time.
    async fn run_task(&mut self, idx: usize) -> Result<TaskOutcome, EngineError> {
        let wf = self.wf.clone();
        let task: &Task = &wf.tasks[idx];
        let (units, concurrency) = match &task.with_items {
            None => (1, 1),
            Some((items_t, conc)) => {
                if self.cur().items.is_none() {
                    let mut vars = self.vars(None, None, items_t.mentions("tasks"));
                    match items_t.render(&mut vars) {
                        Ok(Json::Array(items)) => self.cur().items = Some(items),
                        Ok(other) => {
                            return Ok(task_failed(format!(
                                "with.items must yield an array, got {other}"
                            )))
                        }
                        Err(e) => return Ok(task_failed(format!("with.items: {e}"))),
                    }
                    self.items_changed = true;
                    self.save().await?;
                }
                (self.cur().items.as_ref().map_or(0, Vec::len), *conc)
            }
        };
        let mut running: FuturesUnordered<UnitFuture> = FuturesUnordered::new();
        // Children recorded as in flight by an earlier process.
        for (unit, child_id) in self.cur().in_flight.clone() {
            match self.recover_child(&child_id).await? {
                Recovered::Done(o) => self.unit_done(unit, o),
                Recovered::Rerun => {
                    self.cur().in_flight.remove(&unit);
                }
                Recovered::Resumed(fut) => {
                    running.push(Box::pin(async move { (unit, fut.await) }));
                }
            }
        }
        // Units are started in order: those before `next` are done or in flight.
        let mut next = 0;
        loop {
            while self.cur().in_flight.len() < concurrency {
                let c = self.cur();
                let Some(unit) =
                    (next..units).find(|u| !c.done.contains_key(u) && !c.in_flight.contains_key(u))
                else {
                    break;
                };
                next = unit + 1;
                if self.cancel.is_cancelled() {
                    break;
                }
                if self.state.task_runs >= self.wf.max_task_runs {
                    let msg = format!(
                        "workflow exceeded its bound of {} task runs (max_task_runs); a transition probably loops",
                        self.wf.max_task_runs
                    );
                    return Ok(TaskOutcome {
                        fatal: true,
                        ..task_failed(msg)
                    });
                }
                self.state.task_runs += 1;
                let item = self.cur().items.as_ref().and_then(|i| i.get(unit)).cloned();
                if let Some(fut) = self.start_unit(task, unit, item).await? {
                    running.push(Box::pin(async move { (unit, fut.await) }));
                }
            }
            let Some((unit, finished)) = running.next().await else {
                break;
            };
            let o = match finished {
                // The result in clear: publish and guards may use secret values.
                Ok((child, result)) => UnitOutcome {
                    status: child.status,
                    result,
                    error: child.error,
                },
                Err(e) => UnitOutcome {
                    status: Status::Failed,
                    result: Json::Null,
                    error: Some(e.to_string()),
                },
            };
            self.unit_done(unit, o);
        }
        if self.cancel.is_cancelled() && self.cur().done.len() < units {
            return Ok(TaskOutcome {
                status: Status::Canceled,
                result: Json::Null,
                error: Some("canceled".into()),
                fatal: false,
            });
        }
        Ok(combine(self.cur(), task.with_items.is_some()))
    }

    /// The cursor of the task being run (there always is one while a task runs).
    fn cur(&mut self) -> &mut Cursor {
        let pass = self.state.passes;
        self.state
            .cursor
            .get_or_insert_with(|| Cursor::at("", 1, pass))
    }

    /// Record that `unit` of the current task ended with `o`.
    fn unit_done(&mut self, unit: usize, o: UnitOutcome) {
        let c = self.cur();
        c.in_flight.remove(&unit);
        c.done.insert(unit, o);
        self.changed_units.push(unit);
    }

    /// Point the chain at `next` (task name, attempt), or at its end; the entries of the
    /// cursor it leaves are removed with the next save.
    fn move_to(&mut self, next: Option<(&str, u32)>) {
        if let Some(old) = self.state.cursor.take() {
            let units = old.items.as_ref().map_or(1, Vec::len);
            self.retired.push((old.pass, units));
        }
        self.changed_units.clear();
        self.items_changed = false;
        if let Some((task, attempt)) = next {
            self.state.passes += 1;
            self.state.cursor = Some(Cursor::at(task, attempt, self.state.passes));
        }
    }

    /// Render a unit's parameters, record its child and start it.
    /// The child record, the cursor naming it in flight (or its failure) and the state are
    /// committed together and made durable before the child starts, so a restart finds
    /// either no child or exactly this one, and a fast child's final record is never
    /// overwritten by its initial one.
    async fn start_unit(
        &mut self,
        task: &Task,
        unit: usize,
        item: Option<Json>,
    ) -> Result<Option<ChildFuture>, EngineError> {
        let mut vars = self.vars(None, item.as_ref(), task.parameters.mentions("tasks"));
        let mut req = Request {
            action: task.action.clone(),
            parameters: Json::Null,
            parent: Some(self.execution.id.clone()),
            task: Some(task.name.clone()),
            item: item.clone(),
            trigger_instance: self.execution.trigger_instance.clone(),
            rule: self.execution.rule.clone(),
            requested_by: self.execution.requested_by.clone(),
            attempt: self.cur().attempt,
        };
        let prepared = match task.parameters.render(&mut vars) {
            Ok(p @ (Json::Object(_) | Json::Null)) => {
                req.parameters = p;
                self.engine.prepare(&req).map_err(|e| e.to_string())
            }
            Ok(other) => Err(format!("parameters must render to a map, got {other}")),
            Err(e) => Err(format!("rendering parameters: {e}")),
        };
        let mut batch = Batch::default();
        let start = match prepared {
            Ok(mut p) => {
                self.engine.stage(&mut batch, &mut p);
                self.cur().in_flight.insert(unit, p.execution.id.clone());
                Some(p)
            }
            Err(msg) => {
                let rec = self
                    .engine
                    .failed_record(&req, &format!("task `{}`: {msg}", task.name));
                batch.execution(None, &rec);
                self.unit_done(
                    unit,
                    UnitOutcome {
                        status: Status::Failed,
                        result: Json::Null,
                        error: rec.error.clone(),
                    },
                );
                None
            }
        };
        self.stage_state(&mut batch);
        let t = self.engine.store().commit(batch)?;
        // An idempotent child may run again after a crash, so its start need not be on disk
        // first (its final record is); anything else must be.
        if start
            .as_ref()
            .is_none_or(crate::executions::must_record_start)
        {
            self.engine.store().durable(t).await?;
        }
        Ok(start.map(|p| {
            let engine = self.engine.clone();
            let cancel = self.cancel.clone();
            // A task of its own, not a future polled by this loop: the loop awaits the
            // store while children run, and a child holding the store's flush lock must
            // make progress meanwhile.
            let handle = tokio::spawn(async move { engine.run_prepared_clear(p, cancel).await });
            let fut: ChildFuture = Box::pin(async move {
                handle.await.unwrap_or_else(|e| {
                    Err(EngineError::Store(squall_core::store::StoreError::Io(
                        std::io::Error::other(format!("task runner crashed: {e}")),
                    )))
                })
            });
            fut
        }))
    }

    /// Record the task's outcome, publish, retry or follow a transition. Returns an
    /// outcome when the workflow must end now with it.
    async fn after_task(
        &mut self,
        idx: usize,
        mut outcome: TaskOutcome,
    ) -> Result<Option<ActionOutcome>, EngineError> {
        let wf = self.wf.clone();
        let task: &Task = &wf.tasks[idx];
        let attempt = self.state.cursor.as_ref().map_or(1, |c| c.attempt);
        if outcome.status == Status::Succeeded {
            let needs_tasks = task.publish.iter().any(|(_, t)| t.mentions("tasks"));
            let mut vars = self.vars(Some(&outcome.result), None, needs_tasks);
            for (name, t) in &task.publish {
                match t.render(&mut vars) {
                    Ok(v) => {
                        vars.set(name, &v);
                        self.state.scope.insert(name.clone(), v);
                        if !self.state.published.contains(name) {
                            self.state.published.push(name.clone());
                        }
                    }
                    Err(e) => {
                        outcome.status = Status::Failed;
                        outcome.error = Some(format!("publish `{name}`: {e}"));
                        break;
                    }
                }
            }
        }
        let failed = outcome.status != Status::Succeeded;
        // An abandoned task was interrupted by a crash and is not idempotent: retrying it
        // would run it again, which is exactly what `idempotent: false` forbids.
        let retryable = failed && outcome.status != Status::Abandoned;
        if let (true, Some(retry)) = (retryable, &task.retry) {
            if attempt <= retry.count {
                let delay = Duration::from_secs_f64(retry.delay.max(0.0));
                self.move_to(Some((&task.name, attempt + 1)));
                self.save().await?;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = self.cancel.cancelled() => {}
                }
                return Ok(None);
            }
        }
        self.state.tasks.insert(
            task.name.clone(),
            json!({"status": outcome.status, "result": outcome.result, "error": outcome.error}),
        );
        self.changed_tasks.push(task.name.clone());
        self.state.last = Some(LastTask {
            task: task.name.clone(),
            status: outcome.status,
            error: outcome.error.clone(),
        });
        let nexts: &[Next] = if failed {
            &task.on_failure
        } else {
            &task.on_success
        };
        let needs_tasks = nexts
            .iter()
            .any(|n| n.condition.as_ref().is_some_and(|c| c.mentions("tasks")));
        let mut vars = self.vars(Some(&outcome.result), None, needs_tasks);
        let mut chosen = None;
        for n in nexts {
            let holds = match &n.condition {
                None => true,
                Some(c) => match c.eval_bool(&mut vars) {
                    Ok(b) => b,
                    Err(e) => {
                        self.move_to(None);
                        self.save().await?;
                        let msg = format!(
                            "task `{}`: transition guard `{}`: {e}",
                            task.name,
                            c.source()
                        );
                        return Ok(Some(ActionOutcome::failed(msg, self.default_output())));
                    }
                },
            };
            if holds {
                chosen = Some(n.task);
                break;
            }
        }
        let next = chosen.map(|i| self.wf.tasks[i].name.clone());
        self.move_to(next.as_deref().map(|t| (t, 1)));
        // Not flushed here: what comes next flushes it (the next task's start, or the
        // workflow's final record). Lost in a crash, this state is derived again from the
        // finished child's durable record, with the same outcome.
        self.commit_state()?;
        Ok(None)
    }

    /// The workflow's outcome once the chain has ended.
    fn finish(&mut self) -> ActionOutcome {
        let Some(last) = self.state.last.clone() else {
            return ActionOutcome::succeeded(self.default_output());
        };
        let output = match &self.wf.output {
            Some(t) if last.status == Status::Succeeded => {
                let mut vars = self.vars(None, None, t.mentions("tasks"));
                match t.render(&mut vars) {
                    Ok(v) => v,
                    Err(e) => {
                        return ActionOutcome::failed(format!("output: {e}"), self.default_output())
                    }
                }
            }
            _ => self.default_output(),
        };
        match last.status {
            Status::Succeeded => ActionOutcome::succeeded(output),
            Status::Timeout => ActionOutcome {
                status: Status::Timeout,
                result: output,
                error: Some(format!("task `{}` timed out", last.task)),
            },
            s => {
                let why = last.error.unwrap_or_else(|| s.to_string());
                ActionOutcome::failed(format!("task `{}` {s}: {why}", last.task), output)
            }
        }
    }

    /// The published values, by name.
    fn default_output(&self) -> Json {
        let map: Map<String, Json> = self
            .state
            .published
            .iter()
            .filter_map(|n| self.state.scope.get(n).map(|v| (n.clone(), v.clone())))
            .collect();
        Json::Object(map)
    }

    /// The variables of an expression: the scope, `workflow`, and `result` / `item` when
    /// given. `tasks` only when `with_tasks`: it grows with every task, so it is converted
    /// only for the expressions that mention it.
    fn vars(&self, result: Option<&Json>, item: Option<&Json>, with_tasks: bool) -> Vars {
        let mut vars = Vars::from_map(&self.state.scope);
        if with_tasks {
            vars.set("tasks", &Json::Object(self.state.tasks.clone()));
        }
        vars.set(
            "workflow",
            &json!({"id": self.execution.id, "action": self.execution.action}),
        );
        if let Some(r) = result {
            vars.set("result", r);
        }
        if let Some(i) = item {
            vars.set("item", i);
        }
        vars
    }
}

/// A running child: its final record and its result in clear.
type ChildFuture = Pin<Box<dyn Future<Output = Result<(Execution, Json), EngineError>> + Send>>;

type UnitFuture =
    Pin<Box<dyn Future<Output = (usize, Result<(Execution, Json), EngineError>)> + Send>>;

fn task_failed(msg: String) -> TaskOutcome {
    TaskOutcome {
        status: Status::Failed,
        result: Json::Null,
        error: Some(msg),
        fatal: false,
    }
}

/// One outcome for the task from its units: for `with` tasks the result is the list of
/// item results, and the task fails if any item did not succeed.
fn combine(cursor: &Cursor, with_items: bool) -> TaskOutcome {
    if !with_items {
        return match cursor.done.get(&0) {
            Some(o) => TaskOutcome {
                status: o.status,
                result: o.result.clone(),
                error: o.error.clone(),
                fatal: false,
            },
            None => task_failed("task did not run".into()),
        };
    }
    let results: Vec<Json> = cursor.done.values().map(|o| o.result.clone()).collect();
    let bad: Vec<(usize, &UnitOutcome)> = cursor
        .done
        .iter()
        .filter(|(_, o)| o.status != Status::Succeeded)
        .map(|(i, o)| (*i, o))
        .collect();
    if bad.is_empty() {
        return TaskOutcome {
            status: Status::Succeeded,
            result: Json::Array(results),
            error: None,
            fatal: false,
        };
    }
    let first = bad[0];
    let status = if bad.iter().all(|(_, o)| o.status == Status::Canceled) {
        Status::Canceled
    } else {
        Status::Failed
    };
    TaskOutcome {
        status,
        result: Json::Array(results),
        error: Some(format!(
            "{} of {} items did not succeed; item {}: {}",
            bad.len(),
            cursor.done.len(),
            first.0,
            first
                .1
                .error
                .clone()
                .unwrap_or_else(|| first.1.status.to_string())
        )),
        fatal: false,
    }
}

#[cfg(test)]
mod tests;
