// Testing Library's DOM matchers (toBeInTheDocument, ...) for every test file.
import '@testing-library/jest-dom/vitest';
