// The code against its declarations (see types.test.mjs). tsc checks the
// code itself (`checkJs`: src/ types its values with the declared types in
// JSDoc), and here that each entry exports what its declarations say, with
// the types they say, and nothing they do not declare.
import type * as Declared from 'chat-server-client';
import type * as DeclaredReact from 'chat-server-client/react';
import * as Code from '../../chat-client.js';
import * as ReactCode from '../../react.js';

// The one thing the code cannot say in JSDoc: which events its classes emit
// (they inherit EventTarget's untyped `addEventListener`). Those overloads
// are left out of the comparison; everything else of a class is compared.
type Listening = 'addEventListener' | 'removeEventListener';
type AsCoded<T> = T extends new (...args: infer A) => infer I
  ? (new (...args: A) => Omit<I, Listening>) & Omit<T, 'prototype'>
  : T;
type AsCodedModule<M> = { [K in keyof M]: AsCoded<M[K]> };

// A declared value the code lacks, or has with another type, fails here.
export const declared: AsCodedModule<typeof Declared> = Code;
export const declaredReact: typeof DeclaredReact = ReactCode;

// An exported value the declarations lack fails here.
type Undeclared = Exclude<keyof typeof Code, keyof typeof Declared> | Exclude<keyof typeof ReactCode, keyof typeof DeclaredReact>;
export const nothingUndeclared: [Undeclared] extends [never] ? true : Undeclared = true;
