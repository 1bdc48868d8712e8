<?php
/**
 * The room: every message so far, rendered by PHP, and a plain form. That is
 * the whole app without JavaScript: a reload shows what others wrote. With
 * the cometbox client (served by Caddy at {prefix}/client.js) new messages
 * appear live, and @mentions arrive on the user's private channel.
 */
declare(strict_types=1);

require __DIR__ . '/lib.php';

startSession();
$user = currentUser();
if ($user === null) {
    redirect('login.php');
}
$messages = recentMessages();
$notice = takeFlash();

// The hub id of the newest message on the page: the client resumes right
// after it, so nothing published between rendering and subscribing is missed.
$cursor = '';
foreach ($messages as $m) {
    if (!empty($m['comet_id'])) {
        $cursor = (string) $m['comet_id'];
    }
}
$userChannel = "user.$user";
$token = '';
if (config('COMET_TOKEN_KEY') !== '') {
    // Valid for a working day; the page is reloaded long before that.
    $token = publisher()->subscribeToken([$userChannel], 8 * 3600);
}
$prefix = config('COMET_PREFIX', '/comet');
?>
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Lobby · cometbox chat</title>
<link rel="stylesheet" href="style.css">
</head>
<body>
<header>
  <h1>Lobby</h1>
  <form method="post" action="logout.php" class="logout">
    <?= csrfField() ?>
    Logged in as <strong id="me"><?= h($user) ?></strong>
    <button type="submit">Log out</button>
  </form>
</header>
<?php if ($notice !== null): ?>
<p class="notice"><?= h($notice) ?></p>
<?php endif ?>
<main id="chat"
      data-prefix="<?= h($prefix) ?>"
      data-channel="<?= h(ROOM_CHANNEL) ?>"
      data-user-channel="<?= h($userChannel) ?>"
      data-token="<?= h($token) ?>"
      data-last-id="<?= h($cursor) ?>">
  <ol id="messages">
<?php foreach ($messages as $m): ?>
    <li id="m<?= (int) $m['id'] ?>"><time datetime="<?= h(gmdate('c', (int) $m['time'])) ?>"><?= h(gmdate('H:i', (int) $m['time'])) ?></time>
      <b class="user"><?= h($m['user']) ?></b> <span class="text"><?= h($m['text']) ?></span></li>
<?php endforeach ?>
  </ol>
  <p id="empty"<?= $messages ? ' hidden' : '' ?>>No messages yet. Say hello.</p>
  <ul id="mentions" aria-live="polite"></ul>
</main>
<form method="post" action="post.php" class="say">
  <?= csrfField() ?>
  <input name="text" maxlength="<?= MAX_TEXT ?>" required autofocus autocomplete="off" placeholder="Message (@name to mention)">
  <button type="submit">Send</button>
</form>
<script src="<?= h($prefix) ?>/client.js"></script>
<script>
(function () {
  'use strict';
  // Without the push client (JavaScript off, client.js not served) the page
  // stays what it is without JavaScript: a form, and a reload shows news.
  if (typeof window.Comet !== 'function') { return; }
  var chat = document.getElementById('chat');
  var list = document.getElementById('messages');
  var d = chat.dataset;
  var loadedAt = Date.now();

  function time(seconds) {
    var t = new Date(seconds * 1000);
    var el = document.createElement('time');
    el.dateTime = t.toISOString();
    el.textContent = t.toISOString().slice(11, 16);
    return el;
  }

  // Built with textContent, never innerHTML: message text is user input.
  function addMessage(m) {
    if (!m || typeof m.id !== 'number' || document.getElementById('m' + m.id)) {
      return; // rendered by PHP already, or delivered twice after a resume
    }
    var li = document.createElement('li');
    li.id = 'm' + m.id;
    var who = document.createElement('b');
    who.className = 'user';
    who.textContent = m.user;
    var text = document.createElement('span');
    text.className = 'text';
    text.textContent = m.text;
    li.appendChild(time(m.time));
    li.appendChild(document.createTextNode(' '));
    li.appendChild(who);
    li.appendChild(document.createTextNode(' '));
    li.appendChild(text);
    list.appendChild(li);
    document.getElementById('empty').hidden = true;
    li.scrollIntoView({block: 'nearest'});
  }

  function addMention(m) {
    var li = document.createElement('li');
    li.textContent = m.user + ' mentioned you: ' + m.text;
    document.getElementById('mentions').appendChild(li);
  }

  try {
    var options = {};
    if (d.token) { options.token = d.token; }
    if (d.lastId) { options.lastId = d.lastId; }
    // ?transports=sse (or ws, stream, longpoll, comma-separated) pins the
    // transports, so that the end-to-end tests can drive each one in turn.
    var forced = /[?&]transports=([a-z,]+)/.exec(window.location.search);
    if (forced) { options.transports = forced[1].split(','); }
    var comet = new window.Comet(d.prefix, options);
    // Push state on the element, for a stylesheet and for the tests.
    comet.on('state', function (state, transport) {
      chat.setAttribute('data-state', state);
      chat.setAttribute('data-transport', transport || '');
    });
    comet.subscribe(d.channel, function (data) { addMessage(data); });
    if (d.token) {
      comet.subscribe(d.userChannel, function (data) { addMention(data); });
    }
    // History was lost (the hub restarted): what the page shows may have
    // gaps, so render it again, unless it was rendered from the database
    // moments ago, which is as fresh as it gets (and avoids a reload loop).
    comet.on('reset', function () {
      if (Date.now() - loadedAt > 5000) { window.location.reload(); }
    });
  } catch (e) {
    // A push client that fails must not take the page with it.
    if (window.console) { console.error('cometbox:', e); }
  }
})();
</script>
</body>
</html>
