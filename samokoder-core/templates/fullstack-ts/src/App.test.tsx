// @vitest-environment jsdom
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, expect, test, vi } from 'vitest';
import { App } from './App.tsx';

/** Answers the front end's fetches like the API would. */
function serve(routes: Record<string, (body: any) => [number, unknown]>) {
  const fetchMock = vi.fn(async (url: string, init?: RequestInit) => {
    const key = `${init?.method ?? 'GET'} ${url}`;
    const route = routes[key];
    if (!route) {
      return new Response(JSON.stringify({ error: `no route ${key}` }), { status: 404 });
    }
    const [status, body] = route(init?.body ? JSON.parse(String(init.body)) : undefined);
    return new Response(status === 204 ? null : JSON.stringify(body), { status });
  });
  vi.stubGlobal('fetch', fetchMock);
  return fetchMock;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

test('a visitor sees the sign-in form', async () => {
  serve({ 'GET /api/me': () => [401, { error: 'not signed in' }] });
  render(<App />);
  expect(await screen.findByRole('button', { name: 'Sign in' })).toBeInTheDocument();
  expect(screen.getByRole('button', { name: 'Create account' })).toBeInTheDocument();
});

test('a wrong password is shown, and a right one leads to the todos', async () => {
  serve({
    'GET /api/me': () => [401, { error: 'not signed in' }],
    'POST /api/login': (body) =>
      body.password === 'right-password'
        ? [200, { id: 1, email: body.email }]
        : [401, { error: 'wrong e-mail or password' }],
    'GET /api/todos': () => [200, [{ id: 7, title: 'Write tests', done: false }]],
  });
  render(<App />);
  fireEvent.change(await screen.findByLabelText('E-mail'), { target: { value: 'a@example.com' } });
  fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'wrong-password' } });
  fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
  expect(await screen.findByRole('alert')).toHaveTextContent('wrong e-mail or password');

  fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'right-password' } });
  fireEvent.click(screen.getByRole('button', { name: 'Sign in' }));
  expect(await screen.findByText('Write tests')).toBeInTheDocument();
  expect(screen.getByText(/Signed in as a@example.com/)).toBeInTheDocument();
});

test('adding a todo shows it in the list', async () => {
  serve({
    'GET /api/me': () => [200, { id: 1, email: 'a@example.com' }],
    'GET /api/todos': () => [200, []],
    'POST /api/todos': (body) => [201, { id: 3, title: body.title, done: false }],
  });
  render(<App />);
  fireEvent.change(await screen.findByLabelText('Title'), { target: { value: 'Buy milk' } });
  fireEvent.click(screen.getByRole('button', { name: 'Add' }));
  await waitFor(() => expect(screen.getByText('Buy milk')).toBeInTheDocument());
});
