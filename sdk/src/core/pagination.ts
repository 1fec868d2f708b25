import { CloudPhoneError } from './errors.js';

/** The body of a list operation's response. */
export interface PageBody<T> {
  data: T[];
  nextCursor: string | null;
}

/**
 * One page of a list. Iterating it with `for await` yields its items and then those of every following page,
 * fetched as needed; `iterPages()` yields the pages themselves.
 */
export class Page<T> implements AsyncIterable<T> {
  /** The items on this page. */
  readonly data: T[];
  /** The cursor of the next page; `null` on the last page. */
  readonly nextCursor: string | null;
  readonly #fetchPage: (cursor: string) => Promise<Page<T>>;

  /** @param fetchPage Fetches the page at a cursor, with the query of the original call. */
  constructor(body: PageBody<T>, fetchPage: (cursor: string) => Promise<Page<T>>) {
    this.data = body.data;
    this.nextCursor = body.nextCursor;
    this.#fetchPage = fetchPage;
  }

  hasNextPage(): boolean {
    return this.nextCursor !== null;
  }

  /** Fetches the next page. Throws when there is none: check `hasNextPage()` first. */
  async getNextPage(): Promise<Page<T>> {
    if (this.nextCursor === null) throw new CloudPhoneError('There is no next page; check hasNextPage() first.');
    return this.#fetchPage(this.nextCursor);
  }

  /** This page and every following one. */
  async *iterPages(): AsyncGenerator<Page<T>, void, undefined> {
    let page: Page<T> = this;
    yield page;
    while (page.hasNextPage()) {
      page = await page.getNextPage();
      yield page;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for await (const page of this.iterPages()) yield* page.data;
  }
}

/**
 * The result of a list call: `await` it for the first page, or iterate it with `for await` for every item of
 * every page. The first page is requested when it is first awaited or iterated, and only once.
 */
export class PagePromise<T> implements PromiseLike<Page<T>>, AsyncIterable<T> {
  readonly #load: () => Promise<Page<T>>;
  #page: Promise<Page<T>> | undefined;

  constructor(load: () => Promise<Page<T>>) {
    this.#load = load;
  }

  #firstPage(): Promise<Page<T>> {
    this.#page ??= this.#load();
    return this.#page;
  }

  then<Result1 = Page<T>, Result2 = never>(
    onfulfilled?: ((page: Page<T>) => Result1 | PromiseLike<Result1>) | null,
    onrejected?: ((reason: unknown) => Result2 | PromiseLike<Result2>) | null,
  ): Promise<Result1 | Result2> {
    return this.#firstPage().then(onfulfilled, onrejected);
  }

  catch<Result = never>(onrejected?: ((reason: unknown) => Result | PromiseLike<Result>) | null): Promise<Page<T> | Result> {
    return this.#firstPage().catch(onrejected);
  }

  finally(onfinally?: (() => void) | null): Promise<Page<T>> {
    return this.#firstPage().finally(onfinally);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    yield* await this.#firstPage();
  }
}
