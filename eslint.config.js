// ESLint for the whole monorepo (`npm run lint`, run by .ci/run): the
// recommended JavaScript and typescript-eslint rules (syntax only, no type
// information, so it takes seconds), plus the team's habits from
// ../shared/docs/style.md that a linter can check.
import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'bench/**', 'scripts/**', 'docs/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.{ts,tsx,js,mjs}'],
    rules: {
      // TypeScript checks names; ESLint's own check does not know DOM/Node globals in .ts files.
      'no-undef': 'off',
      // An empty block (a `catch {}` above all) must say why in a comment.
      'no-empty': ['error', { allowEmptyCatch: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // A public face is a list of names, not everything a module happens to export.
      'no-restricted-syntax': ['error', { selector: 'ExportAllDeclaration', message: 'export the names this package offers (`export { a, b }`), not `export *`' }],
      'prefer-const': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      // A variable a cleanup closure reads later is flagged as a useless assignment.
      'no-useless-assignment': 'off',
    },
  },
  {
    // A CommonJS file is a preload for `node --require` (which worker threads inherit, unlike --import): require is its import.
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', process: 'readonly', module: 'writable' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Tests read loosely typed JSON answers (`body: any`); their assertions are the check.
    files: ['**/*.test.ts', '**/*.test.tsx', '**/*.test-kit.ts', '**/test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.tsx', 'packages/client/src/react/**/*.ts', 'packages/web/src/**/*.ts'],
    plugins: { 'react-hooks': reactHooks },
    rules: {
      'react-hooks/rules-of-hooks': 'error',
      'react-hooks/exhaustive-deps': 'error',
    },
  },
);
