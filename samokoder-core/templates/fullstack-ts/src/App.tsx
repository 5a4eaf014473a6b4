import { type FormEvent, useEffect, useState } from 'react';
import { api, ApiError, type Todo, type User } from './api.ts';

/** The whole app: sign in (or up), then your todos. */
export function App() {
  const [user, setUser] = useState<User | null | undefined>(undefined);

  useEffect(() => {
    api
      .me()
      .then(setUser)
      .catch(() => setUser(null));
  }, []);

  if (user === undefined) {
    return <p>Loading…</p>;
  }
  return (
    <main>
      <h1>{{project_name}}</h1>
      {user ? (
        <Todos
          user={user}
          onLogout={async () => {
            await api.logout();
            setUser(null);
          }}
        />
      ) : (
        <SignIn onSignedIn={setUser} />
      )}
    </main>
  );
}

export function SignIn({ onSignedIn }: { onSignedIn: (user: User) => void }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');

  async function submit(event: FormEvent, register: boolean) {
    event.preventDefault();
    setError('');
    try {
      onSignedIn(register ? await api.register(email, password) : await api.login(email, password));
    } catch (e) {
      setError(e instanceof ApiError ? e.message : 'Something went wrong');
    }
  }

  return (
    <form onSubmit={(e) => submit(e, false)} aria-label="Sign in">
      <label>
        E-mail <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} required />
      </label>
      <label>
        Password{' '}
        <input
          type="password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          minLength={8}
          required
        />
      </label>
      <button type="submit">Sign in</button>
      <button type="button" onClick={(e) => submit(e, true)}>
        Create account
      </button>
      {error && <p role="alert">{error}</p>}
    </form>
  );
}

export function Todos({ user, onLogout }: { user: User; onLogout: () => void }) {
  const [todos, setTodos] = useState<Todo[]>([]);
  const [title, setTitle] = useState('');

  useEffect(() => {
    api.todos().then(setTodos);
  }, []);

  async function add(event: FormEvent) {
    event.preventDefault();
    const todo = await api.addTodo(title);
    setTodos((all) => [...all, todo]);
    setTitle('');
  }

  async function toggle(todo: Todo) {
    const updated = await api.setDone(todo.id, !todo.done);
    setTodos((all) => all.map((t) => (t.id === todo.id ? updated : t)));
  }

  async function remove(todo: Todo) {
    await api.removeTodo(todo.id);
    setTodos((all) => all.filter((t) => t.id !== todo.id));
  }

  return (
    <section>
      <p>
        Signed in as {user.email} <button onClick={onLogout}>Sign out</button>
      </p>
      <form onSubmit={add} aria-label="New todo">
        <input
          aria-label="Title"
          value={title}
          onChange={(e) => setTitle(e.target.value)}
          placeholder="What needs doing?"
          required
        />
        <button type="submit">Add</button>
      </form>
      <ul>
        {todos.map((todo) => (
          <li key={todo.id}>
            <label>
              <input type="checkbox" checked={todo.done} onChange={() => toggle(todo)} />
              {todo.title}
            </label>
            <button onClick={() => remove(todo)} aria-label={`Delete ${todo.title}`}>
              ×
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}
