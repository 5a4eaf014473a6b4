//! Following a paged listing as one stream.

use std::future::Future;

use futures::{Stream, StreamExt, TryStreamExt, stream};

use crate::Error;

/// The items of every page, fetched one page at a time as the stream is read. `fetch` gets
/// the query of a page and answers its items and the query of the next page (`None` on the
/// last). After an error the stream ends.
pub(crate) fn paginate<Q, T, F, Fut>(
    start: Q,
    fetch: F,
) -> impl Stream<Item = Result<T, Error>> + Send + 'static
where
    Q: Send + 'static,
    T: Send + 'static,
    F: FnMut(Q) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Vec<T>, Option<Q>), Error>> + Send + 'static,
{
    stream::unfold((Some(start), fetch), |(next, mut fetch)| async move {
        let query = next?;
        Some(match fetch(query).await {
            Ok((items, next)) => (Ok(items), (next, fetch)),
            Err(error) => (Err(error), (None, fetch)),
        })
    })
    .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
    .try_flatten()
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn follows_pages_until_the_last_and_stops_after_an_error() {
        let pages = paginate(0u32, |page| async move {
            match page {
                0 => Ok((vec![1, 2], Some(1))),
                1 => Ok((vec![], Some(2))),
                2 => Ok((vec![3], None)),
                _ => unreachable!("no page after the last"),
            }
        });
        let items: Vec<u32> = pages.try_collect().await.unwrap();
        assert_eq!(items, vec![1, 2, 3]);

        let failing = paginate(0u32, |page| async move {
            match page {
                0 => Ok((vec![1], Some(1))),
                _ => Err(Error::NotLoggedIn),
            }
        });
        let results: Vec<Result<u32, Error>> = failing.collect().await;
        assert_eq!(results.len(), 2);
        assert!(matches!(results[1], Err(Error::NotLoggedIn)));
    }
}
