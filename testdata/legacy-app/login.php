<?php
declare(strict_types=1);

require __DIR__ . '/lib.php';

startSession();
$error = null;
$name = '';

if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    requirePostWithCsrf();
    $name = strtolower(trim((string) ($_POST['name'] ?? '')));
    if (validUserName($name)) {
        session_regenerate_id(true); // a new session id at login: no fixation
        $_SESSION['user'] = $name;
        redirect('index.php');
    }
    $error = 'Pick a name of 1 to 32 letters a-z, digits or _.';
    http_response_code(400);
}
?>
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Log in · cometbox chat</title>
<link rel="stylesheet" href="style.css">
</head>
<body>
<h1>cometbox chat</h1>
<?php if ($error !== null): ?>
<p class="error"><?= h($error) ?></p>
<?php endif ?>
<form method="post" action="login.php">
  <?= csrfField() ?>
  <label>Your name <input name="name" value="<?= h($name) ?>" maxlength="32" required autofocus></label>
  <button type="submit">Enter</button>
</form>
<p class="hint">No password: this is a demo. Try <code>ann</code> in one browser and <code>bob</code> in another.</p>
</body>
</html>
