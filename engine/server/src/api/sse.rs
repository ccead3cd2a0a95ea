//! `GET /api/v1/executions/{id}/output`: the output of an execution (and of its workflow
//! children) as server-sent events — what is stored so far, then new chunks as they come,
//! then an `end` event with the final status.
//!
//! The stream reads the store at its own pace, so a slow client only slows itself: nothing
//! is buffered on its behalf.

use super::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream};
use serde_json::json;
use squall_core::model::Execution;
use squall_runtime::executions::EngineError;
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

/// How often the store is read for new output while the execution runs.
const POLL: Duration = Duration::from_millis(200);

struct Tail {
    state: AppState,
    id: String,
    /// Next chunk number per execution (the workflow and each child).
    next: HashMap<String, u64>,
    pending: std::collections::VecDeque<Event>,
    done: bool,
}

pub async fn output(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    s.engine.get(&id)?;
    let tail = Tail {
        state: s,
        id,
        next: HashMap::new(),
        pending: Default::default(),
        done: false,
    };
    let stream = stream::unfold(tail, |mut t| async move {
        loop {
            if let Some(ev) = t.pending.pop_front() {
                return Some((Ok(ev), t));
            }
            if t.done {
                return None;
            }
            match t.poll_once() {
                Ok(Some(finished)) => {
                    // One more read so nothing written just before the end is missed.
                    let _ = t.poll_once();
                    t.pending.push_back(
                        Event::default()
                            .event("end")
                            .data(json!({"id": finished.id, "status": finished.status, "error": finished.error}).to_string()),
                    );
                    t.done = true;
                }
                Ok(None) => {
                    if t.pending.is_empty() {
                        tokio::time::sleep(POLL).await;
                    }
                }
                Err(e) => {
                    t.pending.push_back(
                        Event::default()
                            .event("error")
                            .data(json!({"error": e.to_string()}).to_string()),
                    );
                    t.done = true;
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

impl Tail {
    /// Queue new chunks; returns the record when it has ended.
    fn poll_once(&mut self) -> Result<Option<Execution>, EngineError> {
        let e = self.state.engine.get(&self.id)?;
        let mut ids = vec![e.id.clone()];
        ids.extend(e.children.iter().map(|c| c.id.clone()));
        for exec in ids {
            let from = *self.next.get(&exec).unwrap_or(&0);
            let chunks = self.state.engine.store().output(&exec, from)?;
            for (seq, c) in chunks {
                self.next.insert(exec.clone(), seq + 1);
                let data =
                    json!({"execution": exec, "stream": c.stream, "data": c.data, "at": c.at});
                self.pending
                    .push_back(Event::default().event("output").data(data.to_string()));
            }
        }
        Ok(if e.status.is_terminal() {
            Some(e)
        } else {
            None
        })
    }
}
