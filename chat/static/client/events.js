// Types only: the frames a page sends, and the events it can subscribe to.

/** @typedef {{type: string, ref?: string | null, [field: string]: any}} Frame a client frame */
/** @typedef {import('peerchat-protocol').ServerFrames} ServerFrames */
/**
 * What a page can subscribe to: every server frame by its type (the types come from
 * protocol/frames/, see protocol/jstypes.py), and the client's own events.
 * @typedef {Omit<ServerFrames, 'error'> & {
 *   error: ServerFrames['error'] & {request?: Frame},
 *   status: {state: 'connecting' | 'connected' | 'reconnecting' | 'closed', code?: number},
 *   auth_failed: {code?: number, welcomed?: boolean},
 *   forbidden: {code: number},
 *   send_failed: {conversation_id: string, client_msg_id: string, code: string, message: string},
 *   gap: {conversation_id: string, from: number, to: number},
 *   '*': import('peerchat-protocol').ServerFrame,
 * }} ClientEvents
 */

export {};
