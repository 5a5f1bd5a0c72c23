<?php
declare(strict_types=1);
require __DIR__ . '/../lib/db.php';

$error = null;
if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $name = trim((string) ($_POST['name'] ?? ''));
    $message = trim((string) ($_POST['message'] ?? ''));
    try {
        if ($name === '' || $message === '' || mb_strlen($name) > 100 || mb_strlen($message) > 2000) {
            throw new RuntimeException('Please give your name (max 100) and a message (max 2000).');
        }
        $image = store_image($_FILES['image'] ?? []);
        $stmt = db()->prepare('INSERT INTO entries (name, message, image) VALUES (?, ?, ?)');
        $stmt->execute([$name, $message, $image]);
        header('Location: /', true, 303);
        exit;
    } catch (RuntimeException $ex) {
        http_response_code(400);
        $error = $ex->getMessage();
    } catch (PDOException $ex) {
        error_log('guestbook: database error: ' . $ex->getCode());
        http_response_code(503);
        $error = 'The guestbook is unavailable right now.';
    }
}

$entries = [];
try {
    $entries = db()->query('SELECT name, message, image, created_at FROM entries ORDER BY id DESC LIMIT 100')->fetchAll();
} catch (PDOException $ex) {
    error_log('guestbook: database error: ' . $ex->getCode());
    http_response_code(503);
    $error = $error ?? 'The guestbook is unavailable right now.';
}
?>
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Guestbook · Café des Amis</title>
  <link rel="stylesheet" href="/style.css">
</head>
<body>
<main>
  <h1>Café des Amis — Guestbook</h1>
  <?php if ($error !== null): ?>
    <p class="error"><?= e($error) ?></p>
  <?php endif; ?>
  <form method="post" action="/" enctype="multipart/form-data">
    <label>Your name <input name="name" required maxlength="100"></label>
    <label>Message <textarea name="message" required maxlength="2000" rows="4"></textarea></label>
    <label>Picture (optional) <input type="file" name="image" accept="image/jpeg,image/png,image/gif,image/webp"></label>
    <button>Sign the guestbook</button>
  </form>
  <?php foreach ($entries as $entry): ?>
    <article>
      <h2><?= e($entry['name']) ?> <small><?= e($entry['created_at']) ?></small></h2>
      <p><?= nl2br(e($entry['message'])) ?></p>
      <?php if ($entry['image'] !== null): ?>
        <img src="/uploads/<?= e($entry['image']) ?>" alt="Picture by <?= e($entry['name']) ?>">
      <?php endif; ?>
    </article>
  <?php endforeach; ?>
  <?php if ($entries === [] && $error === null): ?>
    <p>No messages yet. Be the first!</p>
  <?php endif; ?>
</main>
</body>
</html>
