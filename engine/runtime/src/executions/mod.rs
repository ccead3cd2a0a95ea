//! Executions: creating the record of a run, running it with the right runner (or the
//! action-chain interpreter), enforcing timeouts and cancellation, capturing output, and
//! recording the outcome durably.

use squall_core::content::{Action, Content};
use squall_core::locks::{MutexExt, RwLockExt};
use squall_core::model::{now_rfc3339, Execution, Json, OutputChunk, Status};
use squall_core::runner::{ActionOutcome, OutputSink, Registry, RunContext};
use squall_core::store::{Batch, Store, StoreError};
use squall_core::workflow::Workflow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod schedule;
pub use schedule::{Recovery, DEFAULT_WORKERS};

/// How long a runner gets to stop after its cancel token fired before the execution is
/// recorded as stopped anyway.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long an execution whose start is not recorded (see [`Prepared::stored`]) runs
/// before its `running` record is written anyway, so that longer runs show up in
/// listings and can be canceled by id while they run.
const SHOW_RUNNING_AFTER: Duration = Duration::from_millis(20);

/// Extra writes for the commit that records an execution's end (the enforcement that
/// asked for it, the trigger it settles): one commit per finished execution.
pub type Finish = Box<dyn FnOnce(&mut Batch) + Send>;

/// Why an execution could not be created or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such action.
    #[error(transparent)]
    UnknownAction(#[from] squall_core::content::UnknownName),
    /// The action is disabled.
    #[error("action `{0}` is disabled (enabled: false in its metadata)")]
    Disabled(String),
    /// Parameters do not fit the schema.
    #[error("action `{action}`: {error}")]
    Params {
        /// Action reference.
        action: String,
        /// What is wrong.
        #[source]
        error: squall_core::params::ParamError,
    },
    /// The parameters nest deeper than [`squall_core::limits::MAX_DEPTH`].
    #[error("action `{action}`: {error}")]
    TooDeep {
        /// Action reference.
        action: String,
        /// Where and how deep.
        #[source]
        error: squall_core::limits::TooDeep,
    },
    /// No such execution.
    #[error("no execution with id `{0}`")]
    UnknownExecution(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to run, and why.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Action reference.
    pub action: String,
    /// Parameters as given (secrets in clear).
    pub parameters: Json,
    /// Parent workflow execution.
    pub parent: Option<String>,
    /// Task name in the parent.
    pub task: Option<String>,
    /// `with` item.
    pub item: Option<Json>,
    /// Rule that asked for it.
    pub rule: Option<String>,
    /// Trigger instance behind it.
    pub trigger_instance: Option<String>,
    /// Who asked.
    pub requested_by: Option<String>,
    /// Attempt number (default 1).
    pub attempt: u32,
}

/// An execution record built and validated but not yet run.
pub struct Prepared {
    /// The record (status `running` or `failed`).
    pub execution: Execution,
    /// Full parameters, secrets in clear.
    pub parameters: Json,
    /// The action.
    pub action: Arc<Action>,
    /// Whether the record is already in the store. An execution that may run unrecorded
    /// ([`Prepared::may_run_unrecorded`]) is written once, when it ends (or after
    /// [`SHOW_RUNNING_AFTER`] if it runs longer).
    pub stored: bool,
}

impl Prepared {
    /// A record already in the store, to run again (recovery, a resumed workflow).
    /// `parameters` are its full parameters ([`Engine::stored_parameters`]).
    pub fn of_stored(execution: Execution, parameters: Json, action: Arc<Action>) -> Prepared {
        Prepared {
            execution,
            parameters,
            action,
            stored: true,
        }
    }

    /// Whether this execution may start without a record in the store: an idempotent leaf
    /// action. A crash before its final record is durable loses nothing the promises keep:
    /// its trigger is still `pending` and is evaluated again, and an idempotent action may
    /// run again. A workflow always has a record first (it resumes from its state), and a
    /// non-idempotent action's start must be durable before it runs.
    pub fn may_run_unrecorded(&self) -> bool {
        self.action.meta.idempotent && self.action.workflow.is_none()
    }
}

/// The engine's output sink of one execution: chunk numbering and, per stream, the text
/// held back because it could be the start of a secret.
#[derive(Default)]
struct SinkState {
    seq: u64,
    maskers: Vec<(String, squall_core::secrets::StreamMasker)>,
    ended: bool,
}

impl SinkState {
    fn masker(&mut self, stream: &str) -> &mut squall_core::secrets::StreamMasker {
        let i = match self.maskers.iter().position(|(s, _)| s == stream) {
            Some(i) => i,
            None => {
                self.maskers.push((
                    stream.to_string(),
                    squall_core::secrets::StreamMasker::new(),
                ));
                self.maskers.len() - 1
            }
        };
        &mut self.maskers[i].1
    }
}

/// Runs workflows — actions with a compiled chain — for the engine. The action-chain
/// interpreter (`crate::chain::ActionChain`) is the implementation: it drives a workflow
/// through the engine's public API like any client, so this module never depends on it.
pub trait Interpreter: Send + Sync {
    /// Run (or resume, when the store holds its state) the workflow `wf` of `execution`
    /// to its end. Returns the record as the interpreter left it and the outcome.
    fn run(
        &self,
        engine: Arc<Engine>,
        execution: Execution,
        wf: Arc<Workflow>,
        parameters: Json,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = (Execution, ActionOutcome)> + Send>>;
}

/// The execution engine: content, store and runners, shared by the CLI, the API and the
/// workflow interpreter.
pub struct Engine {
    content: RwLock<Arc<Content>>,
    store: Arc<dyn Store>,
    runners: Registry,
    interpreter: Arc<dyn Interpreter>,
    cancels: Mutex<HashMap<String, CancellationToken>>,
    ids: Mutex<ulid::Generator>,
    tap: Mutex<Option<mpsc::UnboundedSender<(String, OutputChunk)>>>,
    workers: Arc<tokio::sync::Semaphore>,
    action_slots: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    tracker: tokio_util::task::TaskTracker,
}

impl Engine {
    /// An engine over loaded content and an open store, running actions with `runners`
    /// and workflows with `interpreter` (see [`crate::engine`] for the usual one).
    pub fn new(
        content: Arc<Content>,
        store: Arc<dyn Store>,
        runners: Registry,
        interpreter: Arc<dyn Interpreter>,
    ) -> Arc<Engine> {
        runners.bind(&store);
        Arc::new(Engine {
            content: RwLock::new(content),
            store,
            runners,
            interpreter,
            cancels: Mutex::new(HashMap::new()),
            ids: Mutex::new(ulid::Generator::new()),
            tap: Mutex::new(None),
            workers: Arc::new(tokio::sync::Semaphore::new(schedule::DEFAULT_WORKERS)),
            action_slots: Mutex::new(HashMap::new()),
            tracker: tokio_util::task::TaskTracker::new(),
        })
    }

    /// The current content (executions keep the snapshot they started with).
    pub fn content(&self) -> Arc<Content> {
        self.content.read_locked().clone()
    }

    /// Replace the content (hot reload).
    pub fn set_content(&self, content: Arc<Content>) {
        *self.content.write_locked() = content;
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A new sortable id.
    pub fn new_id(&self) -> String {
        let mut g = self.ids.locked();
        g.generate()
            .map(|u| u.to_string())
            .unwrap_or_else(|_| ulid::Ulid::new().to_string())
    }

    /// Validate `req` and build its record (status `running`), without writing it.
    pub fn prepare(&self, req: &Request) -> Result<Prepared, EngineError> {
        let content = self.content();
        let action = content
            .action(&req.action)
            .map_err(EngineError::UnknownAction)?;
        if !action.meta.enabled {
            return Err(EngineError::Disabled(action.reference.clone()));
        }
        squall_core::limits::check_input(&req.parameters, "parameters", "").map_err(|error| {
            EngineError::TooDeep {
                action: action.reference.clone(),
                error,
            }
        })?;
        let params = squall_core::params::validate(&action.meta.parameters, &req.parameters)
            .map_err(|error| EngineError::Params {
                action: action.reference.clone(),
                error,
            })?;
        let mut execution = self.record(req, &action.reference, Status::Running);
        execution.parameters = squall_core::params::mask(&action.meta.parameters, &params);
        execution.started_at = Some(execution.created_at.clone());
        Ok(Prepared {
            execution,
            parameters: params,
            action,
            stored: false,
        })
    }

    /// The full parameters of stored execution `e` of `action`: the sealed copy when they
    /// held secrets (the record shows them masked), else the record's own; their secret
    /// values are registered for masking.
    pub fn stored_parameters(&self, e: &Execution, action: &Action) -> Result<Json, EngineError> {
        let parameters = self
            .store
            .sealed_params(&e.id)?
            .unwrap_or_else(|| e.parameters.clone());
        squall_core::params::register_secrets(&action.meta.parameters, &parameters);
        Ok(parameters)
    }

    /// A failed record for a request that could not be prepared (a chain task whose
    /// rendered parameters are invalid must still show up as a failed child).
    pub fn failed_record(&self, req: &Request, error: &str) -> Execution {
        let mut e = self.record(req, &req.action, Status::Failed);
        e.error = Some(squall_core::secrets::mask_str(error));
        e.finished_at = Some(e.created_at.clone());
        e
    }

    /// A new record for `req` with a fresh id, created now; parameters masked by value.
    fn record(&self, req: &Request, action: &str, status: Status) -> Execution {
        Execution {
            id: self.new_id(),
            action: action.to_string(),
            parameters: squall_core::secrets::mask_json(&req.parameters),
            status,
            result: None,
            error: None,
            created_at: now_rfc3339(),
            started_at: None,
            finished_at: None,
            parent: req.parent.clone(),
            task: req.task.clone(),
            trigger_instance: req.trigger_instance.clone(),
            rule: req.rule.clone(),
            attempt: req.attempt.max(1),
            requested_by: req.requested_by.clone(),
            item: req.item.as_ref().map(squall_core::secrets::mask_json),
            children: Vec::new(),
        }
    }

    /// Add a prepared record (and its sealed parameters, when they hold secrets) to `batch`;
    /// the record counts as stored from now on.
    pub fn stage(&self, batch: &mut Batch, p: &mut Prepared) {
        self.stage_record(batch, None, &p.execution, &p.parameters);
        p.stored = true;
    }

    /// Add record `e` (moving from status `prev`, `None` for a new record) and, for a new
    /// record whose parameters hold secrets, the sealed parameters.
    fn stage_record(&self, batch: &mut Batch, prev: Option<Status>, e: &Execution, params: &Json) {
        batch.execution(prev, e);
        if prev.is_none() && e.parameters != *params {
            self.store.seal_params(batch, &e.id, params);
        }
    }

    /// Create and run an execution to the end.
    pub async fn execute(self: &Arc<Self>, req: Request) -> Result<Execution, EngineError> {
        let mut p = self.prepare(&req)?;
        if !p.may_run_unrecorded() {
            let mut b = Batch::default();
            self.stage(&mut b, &mut p);
            let t = self.store.commit(b)?;
            if must_record_start(&p) {
                self.store.durable(t).await?;
            }
        }
        self.run_prepared(p, CancellationToken::new()).await
    }

    /// Run a prepared execution whose record is already stored; `parent_cancel` stops it
    /// with its parent.
    pub async fn run_prepared(
        self: &Arc<Self>,
        p: Prepared,
        parent_cancel: CancellationToken,
    ) -> Result<Execution, EngineError> {
        self.run_prepared_clear(p, parent_cancel)
            .await
            .map(|(execution, _)| execution)
    }

    /// [`Engine::run_prepared`], also returning the result as the runner gave it, before
    /// masking. For a parent workflow: its scope may use secret values (a password read
    /// from Vault), which stay masked in every record and output and sealed in its state.
    pub async fn run_prepared_clear(
        self: &Arc<Self>,
        p: Prepared,
        parent_cancel: CancellationToken,
    ) -> Result<(Execution, Json), EngineError> {
        self.run_to_end(p, parent_cancel, None).await
    }

    /// Run `p` to its end and record the end durably, with `finish`'s writes in the same
    /// commit. An unstored record is written only then (or once it has run for
    /// [`SHOW_RUNNING_AFTER`]).
    pub(crate) async fn run_to_end(
        self: &Arc<Self>,
        p: Prepared,
        parent_cancel: CancellationToken,
        finish: Option<Finish>,
    ) -> Result<(Execution, Json), EngineError> {
        let Prepared {
            execution,
            parameters,
            action,
            stored,
        } = p;
        let id = execution.id.clone();
        let cancel = parent_cancel.child_token();
        self.cancels.locked().insert(id.clone(), cancel.clone());
        let deadline = action
            .meta
            .timeout
            .filter(|t| *t > 0.0)
            .map(Duration::from_secs_f64);
        let fallback = execution.clone();
        // Secrets registered from now until the end stay known while this runs.
        let _secrets = squall_core::secrets::hold(&parameters);
        squall_core::params::register_secrets(&action.meta.parameters, &parameters);
        let sink = self.output_sink(&id);
        // What writing the record later needs, when it is not stored yet.
        let unstored = (!stored).then(|| (execution.clone(), parameters.clone()));
        let run = self.dispatch(
            execution,
            parameters,
            action.clone(),
            cancel.clone(),
            sink.clone(),
        );
        let supervised = supervise(run, deadline, &cancel, fallback);
        tokio::pin!(supervised);
        // Whether the store holds a record of this execution by now.
        let mut in_store = stored;
        let (mut execution, outcome) = match &unstored {
            None => supervised.await,
            Some((record, params)) => tokio::select! {
                biased;
                done = &mut supervised => done,
                _ = tokio::time::sleep(SHOW_RUNNING_AFTER) => {
                    let mut b = Batch::default();
                    self.stage_record(&mut b, None, record, params);
                    match self.store.commit(b) {
                        Ok(_) => in_store = true,
                        Err(e) => tracing::warn!(execution = %id, error = %e, "cannot show the running execution"),
                    }
                    supervised.await
                }
            },
        };
        sink.end();
        self.cancels.locked().remove(&id);
        let prev = in_store.then_some(execution.status);
        execution.status = outcome.status;
        let masked = squall_core::secrets::mask_json(&outcome.result);
        let mut batch = Batch::default();
        if execution.parent.is_some() && masked != outcome.result {
            // A workflow resumed after a crash takes this child's result from the store;
            // it must get the secret values, not `********`.
            self.store
                .seal_result(&mut batch, &execution.id, &outcome.result);
        }
        execution.result = Some(masked);
        execution.error = outcome.error.as_deref().map(squall_core::secrets::mask_str);
        execution.finished_at = Some(now_rfc3339());
        let params = unstored.as_ref().map_or(&Json::Null, |(_, p)| p);
        self.stage_record(&mut batch, prev, &execution, params);
        if let Some(finish) = finish {
            finish(&mut batch);
        }
        let t = self.store.commit(batch)?;
        self.store.durable(t).await?;
        if action.workflow.is_some() {
            execution.children = self.store.children(&execution.id)?;
        }
        tracing::info!(execution = %execution.id, action = %execution.action, status = %execution.status, "execution finished");
        Ok((execution, outcome.result))
    }

    /// The runner (or the chain interpreter) at work. Returns the record as the runner
    /// left it and the outcome.
    async fn dispatch(
        self: &Arc<Self>,
        execution: Execution,
        parameters: Json,
        action: Arc<Action>,
        cancel: CancellationToken,
        output: OutputSink,
    ) -> (Execution, ActionOutcome) {
        if let Some(wf) = action.workflow.clone() {
            let (e, o) = self
                .interpreter
                .run(self.clone(), execution, wf, parameters, cancel)
                .await;
            return (e, bounded(o));
        }
        let Some(runner) = self.runners.get(&action.meta.runner) else {
            let msg = format!("unknown runner `{}`", action.meta.runner);
            return (execution, ActionOutcome::failed(msg, Json::Null));
        };
        let content = self.content();
        let ctx = RunContext {
            execution_id: execution.id.clone(),
            pack_config: content.pack_config(&action.pack),
            content,
            action,
            parameters,
            cancel,
            output,
        };
        (execution, bounded(runner.run(ctx).await))
    }

    /// A sink that stores each output chunk (masked) as it comes, in order, and passes it
    /// to live subscribers. The tail of a chunk that could be the start of a secret is
    /// held back (per stream) until the next chunk or [`OutputSink::end`].
    fn output_sink(self: &Arc<Self>, id: &str) -> OutputSink {
        let state = Arc::new(Mutex::new(SinkState::default()));
        let (engine, id2, state2) = (Arc::downgrade(self), id.to_string(), state.clone());
        let end = move || {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            // Held while storing and publishing: chunks keep their order everywhere.
            let mut st = state2.locked();
            st.ended = true;
            for (stream, mut masker) in std::mem::take(&mut st.maskers) {
                let text = masker.finish();
                engine.deliver(&id2, &mut st.seq, &stream, text);
            }
        };
        let (engine, id) = (Arc::downgrade(self), id.to_string());
        OutputSink::with_end(
            move |stream, data| {
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                let mut st = state.locked();
                let text = if st.ended {
                    squall_core::secrets::mask_str(&data)
                } else {
                    st.masker(stream).push(&data)
                };
                engine.deliver(&id, &mut st.seq, stream, text);
            },
            end,
        )
    }

    /// Store and publish one masked chunk (nothing when it is empty).
    fn deliver(&self, id: &str, seq: &mut u64, stream: &str, data: String) {
        if data.is_empty() {
            return;
        }
        let chunk = OutputChunk {
            stream: stream.to_string(),
            data,
            at: now_rfc3339(),
        };
        if let Err(e) = self.store.put_output(id, *seq, &chunk) {
            tracing::warn!(execution = %id, error = %e, "cannot store output chunk");
        }
        if let Some(tap) = self.tap.locked().as_ref() {
            let _ = tap.send((id.to_string(), chunk));
        }
        *seq += 1;
    }

    /// Receive every output chunk of every execution as `(execution id, chunk)` (the CLI
    /// prints them live during `squall run`).
    pub fn tap_output(&self) -> mpsc::UnboundedReceiver<(String, OutputChunk)> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.tap.locked() = Some(tx);
        rx
    }

    /// Ask a running execution to stop. Returns false when it is not running here.
    pub fn cancel(&self, id: &str) -> bool {
        match self.cancels.locked().get(id) {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// The record of `id` (a workflow's with its children and their current statuses).
    pub fn get(&self, id: &str) -> Result<Execution, EngineError> {
        self.store
            .get_execution(id)?
            .ok_or_else(|| EngineError::UnknownExecution(id.to_string()))
    }
}

/// Whether the `running` record must be on disk before the runner starts. A
/// non-idempotent action must not run twice, so a crash must find it `running` (and mark
/// it abandoned). An idempotent one may run again, so losing its start record is harmless:
/// its final record is durable, and without it recovery simply runs it again. Skipping this
/// flush halves the disk syncs of short idempotent actions.
pub(crate) fn must_record_start(p: &Prepared) -> bool {
    !p.action.meta.idempotent
}

/// `outcome`, failed instead when its result nests deeper than the store can keep
/// readably ([`squall_core::limits::MAX_DEPTH`]).
fn bounded(outcome: ActionOutcome) -> ActionOutcome {
    match squall_core::limits::check_input(&outcome.result, "the result", "result") {
        Ok(()) => outcome,
        Err(e) => ActionOutcome {
            status: Status::Failed,
            result: Json::Null,
            error: Some(match outcome.error {
                Some(was) => format!("{e} (the action had also failed: {was})"),
                None => e.to_string(),
            }),
        },
    }
}

/// Await `run`, enforcing the deadline: at the deadline the cancel token fires and the
/// runner gets [`STOP_GRACE`] to return; the outcome is then `timeout`.
async fn supervise<F>(
    run: F,
    deadline: Option<Duration>,
    cancel: &CancellationToken,
    fallback: Execution,
) -> (Execution, ActionOutcome)
where
    F: std::future::Future<Output = (Execution, ActionOutcome)>,
{
    tokio::pin!(run);
    let Some(limit) = deadline else {
        return run.await;
    };
    tokio::select! {
        r = &mut run => r,
        _ = tokio::time::sleep(limit) => {
            cancel.cancel();
            let message = format!("timed out after {}s (the action's `timeout`)", limit.as_secs_f64());
            match tokio::time::timeout(STOP_GRACE, &mut run).await {
                Ok((e, o)) => (e, ActionOutcome { status: Status::Timeout, result: o.result, error: Some(message) }),
                Err(_) => {
                    // The runner ignored cancellation; the record still ends.
                    (fallback, ActionOutcome { status: Status::Timeout, result: Json::Null, error: Some(message) })
                }
            }
        }
    }
}
