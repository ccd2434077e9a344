//! [`Paginate`]: a large range read page by page, every page from the same
//! revision, so the pages together are one consistent snapshot.

use std::time::Instant;

use super::kv::{Get, RangeResponse};
use crate::call::Call;
use crate::cluster::Cluster;
use crate::flow::{Flow, Input, StreamFlow, StreamStep};

/// Reads a range in pages of at most `page_size` keys, in key order, all
/// at the revision of the first page (later writes are not seen; a
/// compaction past that revision fails the next page with `Compacted`).
///
/// Emits one [`RangeResponse`] per page; `header.revision` is the same on
/// every page. Each page is its own request, so no answer grows past the
/// gateway's message limits however large the range is.
///
/// ```
/// use etcd_proto::v3::{KeyRange, Paginate};
/// let pages = Paginate::new(KeyRange::prefix("logs/"), 500);
/// # let _ = pages;
/// ```
#[derive(Debug)]
pub struct Paginate {
    template: Get,
    page_size: i64,
    next_key: Option<Vec<u8>>,
    revision: i64,
    call: Option<Call<Get>>,
    pending: Option<RangeResponse>,
    finished: bool,
}

impl Paginate {
    /// Pages through `range`, `page_size` keys at a time (at least 1).
    pub fn new(range: impl Into<super::KeyRange>, page_size: i64) -> Self {
        let template = Get::new(range);
        Paginate {
            next_key: Some(template.range().key().to_vec()),
            template,
            page_size: page_size.max(1),
            revision: 0,
            call: None,
            pending: None,
            finished: false,
        }
    }

    /// Pages through a read with its own options (filters, keys only, a
    /// fixed revision); its limit and sort order are replaced by the pager's.
    pub fn with_get(get: Get, page_size: i64) -> Self {
        let mut pager = Paginate::new(get.range().clone(), page_size);
        pager.template = get;
        pager
    }

    /// The revision every page is read at (0 until the first page arrives).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    fn next_call(&mut self, start: Vec<u8>) -> Call<Get> {
        let range = self.template.range();
        let mut get = self.template.clone().limit(self.page_size);
        get.range = super::KeyRange::range(start, range.range_end().to_vec());
        if self.revision != 0 {
            get = get.revision(self.revision);
        }
        Call::new(get)
    }

    fn after_page(&mut self, page: RangeResponse) {
        if self.revision == 0 {
            self.revision = page.header.revision;
        }
        let single_key = self.template.range().range_end().is_empty();
        self.next_key = match page.kvs.last() {
            Some(last) if page.more && !single_key => {
                // The smallest key after `last`.
                let mut next = last.key.clone();
                next.push(0);
                Some(next)
            }
            _ => None,
        };
        self.pending = Some(page);
    }
}

impl StreamFlow for Paginate {
    type Item = RangeResponse;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> StreamStep<RangeResponse> {
        loop {
            if let Some(page) = self.pending.take() {
                return StreamStep::Emit(page);
            }
            if self.finished {
                return StreamStep::End(Ok(()));
            }
            if let Some(call) = &mut self.call {
                match StreamStep::from_flow(call.poll(cluster, now)) {
                    Err(step) => return step,
                    Ok(result) => {
                        self.call = None;
                        match result {
                            Ok(page) => self.after_page(page),
                            Err(e) => {
                                self.finished = true;
                                return StreamStep::End(Err(e));
                            }
                        }
                    }
                }
                continue;
            }
            match self.next_key.take() {
                Some(start) => self.call = Some(self.next_call(start)),
                None => self.finished = true,
            }
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        match (input, &mut self.call) {
            // A caller that has read enough pages ends the reading cleanly.
            (Input::Stop, _) => {
                (self.call, self.pending, self.next_key) = (None, None, None);
                self.finished = true;
            }
            (input, Some(call)) => call.handle(cluster, now, input),
            // A pager never opens a stream: nothing else can fail.
            (Input::Failure(_), None) => self.finished = true,
            (_, None) => {}
        }
    }
}
