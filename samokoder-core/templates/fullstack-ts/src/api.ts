// The API as the front end sees it: same origin, JSON, the session in an HttpOnly cookie.

export interface User {
  id: number;
  email: string;
}

export interface Todo {
  id: number;
  title: string;
  done: boolean;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`/api${path}`, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  if (response.status === 204) {
    return undefined as T;
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ApiError(response.status, data.error ?? response.statusText);
  }
  return data as T;
}

export const api = {
  me: () => call<User>('GET', '/me'),
  register: (email: string, password: string) =>
    call<User>('POST', '/register', { email, password }),
  login: (email: string, password: string) => call<User>('POST', '/login', { email, password }),
  logout: () => call<void>('POST', '/logout'),
  todos: () => call<Todo[]>('GET', '/todos'),
  addTodo: (title: string) => call<Todo>('POST', '/todos', { title }),
  setDone: (id: number, done: boolean) => call<Todo>('PATCH', `/todos/${id}`, { done }),
  removeTodo: (id: number) => call<void>('DELETE', `/todos/${id}`),
};
