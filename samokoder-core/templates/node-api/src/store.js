'use strict';

// In-memory storage for items. Replace with a database when the project needs persistence.

class ValidationError extends Error {}

function validate(input, { partial }) {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ValidationError('the body must be a JSON object');
  }
  const out = {};
  if ('name' in input || !partial) {
    if (typeof input.name !== 'string' || input.name.trim() === '') {
      throw new ValidationError('name must be a non-empty string');
    }
    if (input.name.length > 200) throw new ValidationError('name must be at most 200 characters');
    out.name = input.name.trim();
  }
  if ('done' in input) {
    if (typeof input.done !== 'boolean') throw new ValidationError('done must be true or false');
    out.done = input.done;
  }
  return out;
}

class ItemStore {
  constructor() {
    this.items = new Map();
    this.nextId = 1;
  }

  list() {
    return [...this.items.values()];
  }

  get(id) {
    return this.items.get(String(id)) || null;
  }

  create(input) {
    const fields = validate(input, { partial: false });
    const item = { id: String(this.nextId), name: fields.name, done: fields.done ?? false };
    this.nextId += 1;
    this.items.set(item.id, item);
    return item;
  }

  update(id, input) {
    const existing = this.get(id);
    if (!existing) return null;
    const updated = { ...existing, ...validate(input, { partial: true }) };
    this.items.set(existing.id, updated);
    return updated;
  }

  remove(id) {
    return this.items.delete(String(id));
  }
}

module.exports = { ItemStore, ValidationError };
