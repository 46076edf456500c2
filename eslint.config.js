// ESLint (flat config) for the pages in chat/static/: browser ES modules, no build step.
import js from '@eslint/js';
import globals from 'globals';

// The pages put text into the DOM, never HTML (docs/web.md, Security choices).
const NO_HTML = [
  { selector: "MemberExpression[property.name=/^(innerHTML|outerHTML)$/]", message: 'Build DOM with h()/text nodes, never HTML.' },
  { selector: "CallExpression[callee.property.name=/^(insertAdjacentHTML|write|writeln)$/]", message: 'No HTML strings in the pages.' },
  { selector: "NewExpression[callee.name='Function']", message: 'The CSP forbids eval; so do we.' },
];
// Error codes come from the generated codes.js (ErrorCode.X), never from strings typed here.
const NO_COPIED_CODES = ['left', 'right'].map((side) => ({
  selector: `BinaryExpression[operator=/^[!=]==?$/][${side}.property.name='code'][${side === 'left' ? 'right' : 'left'}.type='Literal']`,
  message: 'Compare codes with ErrorCode.X / CloseCode.X from codes.js.',
}));

export default [
  { ignores: ['node_modules/**', '.venv/**', 'test-artifacts/**'] },
  js.configs.recommended,
  {
    files: ['chat/static/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.browser },
    },
    rules: {
      eqeqeq: ['error', 'always'],
      'no-var': 'error',
      'prefer-const': 'error',
      'no-eval': 'error',
      'no-implied-eval': 'error',
      'no-restricted-syntax': ['error', ...NO_HTML, ...NO_COPIED_CODES],
      'no-unused-vars': ['error', { args: 'after-used', argsIgnorePattern: '^_' }],
      'no-shadow': 'error',
      'no-use-before-define': ['error', { functions: false, classes: true, variables: false }],
      'max-lines': ['error', { max: 250, skipBlankLines: false, skipComments: false }],
    },
  },
  {
    // The language catalogues are data, one key a line: they grow with the pages' words.
    files: ['chat/static/i18n/*.js'],
    rules: { 'max-lines': 'off' },
  },
  {
    files: ['tests/js/**/*.js'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: { ...globals.node } },
    rules: { eqeqeq: ['error', 'always'], 'no-var': 'error', 'prefer-const': 'error' },
  },
  {
    files: ['eslint.config.js'],
    languageOptions: { sourceType: 'module', globals: { ...globals.node } },
  },
];
