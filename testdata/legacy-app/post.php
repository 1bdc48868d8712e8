<?php
/**
 * Saves a chat message, then publishes it: to the room, and to the private
 * channel of each user it @mentions. The message is saved whatever the push
 * does; a push outage only means other browsers see it on their next reload.
 */
declare(strict_types=1);

require __DIR__ . '/lib.php';

startSession();
requirePostWithCsrf();
$user = currentUser();
if ($user === null) {
    redirect('login.php');
}

$text = trim((string) ($_POST['text'] ?? ''));
if ($text === '' || strlen($text) > MAX_TEXT || preg_match('//u', $text) !== 1) {
    setFlash('A message is 1 to ' . MAX_TEXT . ' bytes of text.');
    redirect('index.php');
}

$pushed = true;
// The publish happens under the store's lock, so messages reach the hub in
// the order of their ids and each record keeps the id the hub gave it: the
// room page hands the newest one to the JS client as its cursor.
updateStore(function (array $state) use ($user, $text, &$pushed, &$id): array {
    $id = $state['next_id']++;
    $message = ['id' => $id, 'user' => $user, 'text' => $text, 'time' => time()];

    $batch = [['channel' => ROOM_CHANNEL, 'event' => 'message', 'data' => $message]];
    foreach (mentions($text, $user) as $name) {
        $batch[] = ['channel' => "user.$name", 'event' => 'mention', 'data' => $message];
    }
    $comet = publisher();
    $ids = $comet->publishMany($batch);
    if ($ids === false) {
        $pushed = false;
        error_log('chat: push failed: ' . $comet->lastError());
    }
    $message['comet_id'] = $ids === false ? null : $ids[0];
    $state['messages'][] = $message;
    return $state;
});

if (!$pushed) {
    setFlash('Saved. Live delivery is unavailable right now; others see it when they reload.');
}
redirect('index.php#m' . $id);
