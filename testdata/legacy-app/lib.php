<?php
/**
 * The whole "framework" of the demo chat: configuration from the
 * environment, sessions, CSRF, a JSON file as the database, and the
 * cometbox publisher. Every page requires this file first.
 *
 * Environment:
 *   CHAT_DATA_DIR      where messages and sessions are kept (created if missing)
 *   COMET_PUBLISH_URL  the comet prefix as the app reaches it, e.g. http://127.0.0.1:8080/comet
 *   COMET_PREFIX       the comet prefix as the browser sees it (default /comet)
 *   COMET_TOKEN_KEY    secret for subscribe tokens (the comet token_key); no
 *                      private channel when empty
 */

declare(strict_types=1);

require __DIR__ . '/../../php/Comet.php';

if (realpath($_SERVER['SCRIPT_FILENAME'] ?? '') === __FILE__) {
    http_response_code(404); // a library, not a page
    exit;
}

const ROOM_CHANNEL = 'room.lobby';
const MAX_TEXT = 500;
const KEEP_MESSAGES = 200;
const SHOW_MESSAGES = 50;

function config(string $name, string $default = ''): string
{
    $value = getenv($name);
    return ($value === false || $value === '') ? $default : $value;
}

function dataDir(): string
{
    $dir = config('CHAT_DATA_DIR', sys_get_temp_dir() . '/cometbox-chat');
    if (!is_dir("$dir/sessions") && !mkdir("$dir/sessions", 0700, true) && !is_dir("$dir/sessions")) {
        throw new RuntimeException("cannot create $dir/sessions");
    }
    return $dir;
}

/** Escapes for HTML text and attribute values alike. */
function h(?string $s): string
{
    return htmlspecialchars((string) $s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

// ---- session, login, CSRF ----

function startSession(): void
{
    session_save_path(dataDir() . '/sessions');
    session_name('chat');
    session_set_cookie_params(['httponly' => true, 'samesite' => 'Lax', 'path' => '/']);
    session_start();
    if (empty($_SESSION['csrf'])) {
        $_SESSION['csrf'] = bin2hex(random_bytes(16));
    }
}

function currentUser(): ?string
{
    return isset($_SESSION['user']) ? (string) $_SESSION['user'] : null;
}

/** User names double as channel names (user.{name}), so they keep to a safe alphabet. */
function validUserName(string $name): bool
{
    return preg_match('/^[a-z0-9_]{1,32}$/', $name) === 1;
}

function csrfField(): string
{
    return '<input type="hidden" name="csrf" value="' . h($_SESSION['csrf']) . '">';
}

function requirePostWithCsrf(): void
{
    if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
        http_response_code(405);
        header('Allow: POST');
        exit('Use the form.');
    }
    if (!hash_equals($_SESSION['csrf'], (string) ($_POST['csrf'] ?? ''))) {
        http_response_code(403);
        exit('The form expired; go back and reload the page.');
    }
}

/** Post/Redirect/Get: a reload after a POST never posts twice. */
function redirect(string $to): void
{
    header('Location: ' . $to, true, 303);
    exit;
}

/** Keeps a notice for the next page the user sees. */
function setFlash(string $message): void
{
    $_SESSION['flash'] = $message;
}

function takeFlash(): ?string
{
    $message = $_SESSION['flash'] ?? null;
    unset($_SESSION['flash']);
    return $message;
}

// ---- storage: one JSON file, locked ----

/**
 * Runs $change on the stored state under an exclusive lock and saves what
 * it returns. The state is ['next_id' => int, 'messages' => [...]].
 */
function updateStore(callable $change): void
{
    $file = fopen(dataDir() . '/messages.json', 'c+');
    flock($file, LOCK_EX);
    try {
        $state = decodeState(stream_get_contents($file));
        $state = $change($state);
        $state['messages'] = array_slice($state['messages'], -KEEP_MESSAGES);
        ftruncate($file, 0);
        rewind($file);
        fwrite($file, json_encode($state, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRETTY_PRINT));
        fflush($file);
    } finally {
        flock($file, LOCK_UN);
        fclose($file);
    }
}

/** @return array[] the newest messages, oldest first */
function recentMessages(): array
{
    $path = dataDir() . '/messages.json';
    if (!is_file($path)) {
        return [];
    }
    $file = fopen($path, 'r');
    flock($file, LOCK_SH);
    $state = decodeState(stream_get_contents($file));
    flock($file, LOCK_UN);
    fclose($file);
    return array_slice($state['messages'], -SHOW_MESSAGES);
}

function decodeState($json): array
{
    $state = is_string($json) && $json !== '' ? json_decode($json, true) : null;
    return is_array($state) ? $state : ['next_id' => 1, 'messages' => []];
}

// ---- push ----

function publisher(): Comet\Publisher
{
    return new Comet\Publisher(config('COMET_PUBLISH_URL', 'http://127.0.0.1:8080/comet'), [
        'timeout' => 1.0,
        'retries' => 1,
        'token_key' => config('COMET_TOKEN_KEY') ?: null,
    ]);
}

/** @return string[] the valid user names a text mentions as @name */
function mentions(string $text, string $author): array
{
    preg_match_all('/(?<![\w@])@([a-z0-9_]{1,32})\b/', strtolower($text), $found);
    return array_values(array_diff(array_unique($found[1]), [$author]));
}
